"""max_pipelines: model architectures, weight loading, tokenization and the generation engine."""

from max_pipelines.engine.llm import LLM
from max_pipelines.engine.outputs import RequestMetrics, RequestOutput, StreamDelta
from max_pipelines.weights.model_loader import load_model

__all__ = ["LLM", "RequestMetrics", "RequestOutput", "StreamDelta", "load_model"]
