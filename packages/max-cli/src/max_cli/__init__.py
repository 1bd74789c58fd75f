"""max_cli."""
