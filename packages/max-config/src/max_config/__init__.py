"""max_config."""
