"""The namespace loaded plugins live under: ``plugmarket.plugins.<id>``.

Nothing is imported from here by hand; plugmarket's finder creates one
submodule per loaded plugin and removes it at unload.
"""
