# Installed by binder/postBuild as {sys.prefix}/etc/ipython/ipython_config.py, which
# IPython reads for every shell and every kernel of this environment (after the user's
# own profile, which can still override it). It loads plugmarket, so `%plugin` works in
# a new notebook without `%load_ext plugmarket`.
c = get_config()  # noqa: F821
c.InteractiveShellApp.extensions.append("plugmarket")
