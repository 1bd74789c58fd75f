"""max_cli: the `max` command."""

import os

# Idle OpenMP threads sleep instead of spinning; set before anything imports torch (see max_pipelines).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
