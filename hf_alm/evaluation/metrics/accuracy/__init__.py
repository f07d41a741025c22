"""The local ``accuracy`` evaluate module (the loadable script is ``accuracy.py`` in this folder)."""
