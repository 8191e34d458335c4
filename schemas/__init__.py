"""The JSON Schemas runpipe ships: pipeline config and analysis outputs (data files)."""
