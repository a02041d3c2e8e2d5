"""Recording formats: one module per format (readers and, for the demo, a writer)."""
