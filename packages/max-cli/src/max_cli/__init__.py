"""max_cli."""

import os

# OpenMP threads that spin while waiting steal the cores from the threads still working when the
# machine is shared (a matmul then waits on a descheduled thread): wait passively. Read once, when
# the OpenMP runtime loads with torch, so it is set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
