"""Qwen2 / Qwen2.5: the Llama decoder with biases on the q, k and v projections."""

from max_pipelines.architectures.llama.model import LlamaForCausalLM, LlamaOptions
from max_pipelines.registry import SupportedArchitecture


class Qwen2Options(LlamaOptions):
    def qkv_bias(self, config: dict) -> bool:
        return True

    def o_bias(self, config: dict) -> bool:
        return False


class Qwen2ForCausalLM(LlamaForCausalLM):
    options = Qwen2Options()


ARCHITECTURES = [SupportedArchitecture("Qwen2ForCausalLM", Qwen2ForCausalLM)]
