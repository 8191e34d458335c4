"""The pipelines runpipe ships (data files)."""
