"""max_cli: the `max` command."""

import os

# Idle OpenMP threads spin briefly, then sleep: a decode step's matmuls follow each other within
# microseconds, while threads that never sleep take the cores other processes need. Read when torch
# loads; an OMP_WAIT_POLICY or GOMP_SPINCOUNT set by the user wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")
