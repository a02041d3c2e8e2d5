"""The control-room page in the web folder: ``status.json``, ``index.html`` and ``history/``."""
