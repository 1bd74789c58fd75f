"""Llama 2/3.x (incl. llama3 RoPE scaling) and SmolLM2."""

from max_pipelines.architectures.llama.model import LlamaForCausalLM
from max_pipelines.registry import SupportedArchitecture
from max_pipelines.weights.mapping import GGUF_WEIGHT_MAP, unpermute_llama_qk

# llama.cpp permutes q/k rows of Llama-architecture GGUFs (Llama, Mistral, SmolLM2).
LLAMA_GGUF_WEIGHT_MAP = GGUF_WEIGHT_MAP.with_rules(transform=unpermute_llama_qk)

ARCHITECTURES = [
    SupportedArchitecture("LlamaForCausalLM", LlamaForCausalLM, gguf_weight_map=LLAMA_GGUF_WEIGHT_MAP),
]
