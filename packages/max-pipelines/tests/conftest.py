"""Shared setup for max_pipelines tests."""

import sys
from pathlib import Path

import torch

# Make `fixtures` importable as a plain package from the test modules.
sys.path.insert(0, str(Path(__file__).parent))
# The models are tiny: one intra-op thread avoids oversubscribing a shared CPU.
torch.set_num_threads(1)
