"""max_pipelines."""
