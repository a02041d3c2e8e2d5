"""Running work: the engine and its executors, outcomes, logs, and the shared recordings path."""
