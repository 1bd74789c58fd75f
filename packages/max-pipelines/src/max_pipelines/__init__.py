"""max_pipelines: model architectures, weight loading, tokenization and the generation engine."""

import os

# Idle OpenMP threads sleep instead of spinning. Decode runs many tiny parallel ops, and on a busy CPU
# spinning threads take the cores the working ones need (10x slower decode). Read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from max_pipelines.engine.llm import LLM  # noqa: E402
from max_pipelines.engine.outputs import RequestMetrics, RequestOutput, StreamDelta  # noqa: E402
from max_pipelines.weights.model_loader import load_model  # noqa: E402

__all__ = ["LLM", "RequestMetrics", "RequestOutput", "StreamDelta", "load_model"]
