"""The local ``zste`` evaluate module (the loadable script is ``zste.py`` in this folder)."""
