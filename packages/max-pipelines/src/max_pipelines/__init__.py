"""max_pipelines: model architectures, weight loading, tokenization and the generation engine."""

import os

# Idle OpenMP threads spin briefly, then sleep: a decode step's matmuls follow each other within
# microseconds, while threads that never sleep take the cores other processes need. Read when torch
# loads; an OMP_WAIT_POLICY or GOMP_SPINCOUNT set by the user wins. The engine picks each step's thread count
# by measurement (max_pipelines.engine.cpu_threads).
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")

from max_pipelines.engine.llm import LLM  # noqa: E402
from max_pipelines.engine.outputs import RequestMetrics, RequestOutput, StreamDelta  # noqa: E402
from max_pipelines.weights.model_loader import load_model  # noqa: E402

__all__ = ["LLM", "RequestMetrics", "RequestOutput", "StreamDelta", "load_model"]
