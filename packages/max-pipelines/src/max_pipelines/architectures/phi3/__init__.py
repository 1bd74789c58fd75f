"""Phi-3: the Llama decoder; checkpoints already fuse qkv_proj and gate_up_proj.

Partial rotary (`partial_rotary_factor`) and longrope scaling come from the config.
"""

from max_pipelines.architectures.llama.model import LlamaForCausalLM
from max_pipelines.registry import SupportedArchitecture
from max_pipelines.weights.mapping import GGUF_WEIGHT_MAP, HF_WEIGHT_MAP, Rule, WeightMap

# Phi-3 GGUFs store the fused gate/up projection as `ffn_up`.
PHI3_GGUF_WEIGHT_MAP = GGUF_WEIGHT_MAP.with_rules(
    Rule(r"blk\.(\d+)\.ffn_up\.weight", r"model.layers.\1.mlp.gate_up_proj.weight")
)


class Phi3ForCausalLM(LlamaForCausalLM):
    pass


ARCHITECTURES = [
    SupportedArchitecture(
        "Phi3ForCausalLM", Phi3ForCausalLM, WeightMap(ignore=HF_WEIGHT_MAP.ignore), PHI3_GGUF_WEIGHT_MAP
    ),
]
