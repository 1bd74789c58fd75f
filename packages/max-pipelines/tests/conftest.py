"""Shared fixtures for max_pipelines tests."""

import sys
from pathlib import Path

# Make `fixtures` importable as a plain package from the test modules.
sys.path.insert(0, str(Path(__file__).parent))
