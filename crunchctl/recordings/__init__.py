"""Process these recordings, record, publish: the one path behind ``process``, ``demo`` and
``watch`` (docs/ARCHITECTURE.md). It sits above ``run``, ``quicklook`` and ``ledger`` and
below the commands and ``watch``; the control-room page is handed to it, not built here.
"""
