"""Configuration: the YAML contract, loading with line numbers, validation and the JSON Schema."""
