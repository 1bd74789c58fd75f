"""Qwen3: the Llama decoder with RMSNorm over each q and k head and `head_dim` from the config."""

from max_pipelines.architectures.llama.model import LlamaForCausalLM, LlamaOptions
from max_pipelines.registry import SupportedArchitecture


class Qwen3Options(LlamaOptions):
    qk_norm = True


class Qwen3ForCausalLM(LlamaForCausalLM):
    options = Qwen3Options()


ARCHITECTURES = [SupportedArchitecture("Qwen3ForCausalLM", Qwen3ForCausalLM)]
