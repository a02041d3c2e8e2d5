"""The ledger: every attempt at every item, in Parquet part files (see docs/ledger.md)."""
