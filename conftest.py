"""Test-session setup shared by every package's tests."""

import os

# Triton's interpreter must be chosen before any kernel is defined.
os.environ.setdefault("TRITON_INTERPRET", "1")
# Idle OpenMP threads sleep rather than spin: xdist workers share the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Each xdist worker gets one thread, so two workers on two cores do not fight.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
