"""Mistral: the Llama decoder with sliding-window attention (`sliding_window` in the config)."""

from max_pipelines.architectures.llama import LLAMA_GGUF_WEIGHT_MAP
from max_pipelines.architectures.llama.model import LlamaForCausalLM
from max_pipelines.registry import SupportedArchitecture


class MistralForCausalLM(LlamaForCausalLM):
    pass


ARCHITECTURES = [
    SupportedArchitecture("MistralForCausalLM", MistralForCausalLM, gguf_weight_map=LLAMA_GGUF_WEIGHT_MAP),
]
