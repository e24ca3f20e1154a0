# Installed by binder/postBuild as {sys.prefix}/etc/jupyter/jupyter_server_config.py, read
# by the Jupyter server of this environment however Binder starts it (`jupyter lab`,
# `jupyter server`, `jupyterhub-singleuser`): "/" opens the quickstart notebook in
# JupyterLab. A launch link's own `urlpath` still wins.
c = get_config()  # noqa: F821
QUICKSTART = "/lab/tree/notebooks/01-quickstart.ipynb"
c.ServerApp.default_url = QUICKSTART
# `jupyter lab` replaces ServerApp.default_url with its own (/lab) unless told otherwise.
c.LabApp.default_url = QUICKSTART
