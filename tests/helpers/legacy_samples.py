"""The legacy tracking file and progress JSON, as users have them (shared by tests)."""

PROCESSED_TOML = """\
# The legacy tracking file: rewritten whole after every processed recording.
processed = [
    "/data/rsa510/20240417_130522.tiq",
    "/data/rsa510/20240417_130742.tiq",
    "/data/rsa510/20240417_131002.tiq",
]
"""

PROGRESS_JSON = """\
{
  "completed_items": ["'orbit_001'", "'orbit_002'", "'orbit_004'"],
  "errors": ["'orbit_003'"],
  "no_data": ["'orbit_005'"],
  "last_index": 4,
  "schema_version": 1
}
"""
