"""max_pipelines: model architectures, weight loading, tokenization and the generation engine."""

import os

# Passive OpenMP waits (see max_cli): only effective when this is imported before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


from max_pipelines.engine.llm import LLM
from max_pipelines.engine.outputs import RequestMetrics, RequestOutput, StreamDelta
from max_pipelines.weights.model_loader import load_model

__all__ = ["LLM", "RequestMetrics", "RequestOutput", "StreamDelta", "load_model"]
