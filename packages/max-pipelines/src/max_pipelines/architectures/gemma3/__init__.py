"""Gemma 3 (text only)."""

from max_pipelines.architectures.gemma3.model import Gemma3ForCausalLM
from max_pipelines.registry import SupportedArchitecture
from max_pipelines.weights.mapping import GGUF_WEIGHT_MAP, HF_WEIGHT_MAP, Rule

_BLK, _LAYER = r"blk\.(\d+)\.", r"model.layers.\1."


def add_one_to_norms(name: str, tensor, config: dict):
    """Hugging Face Gemma checkpoints store `w` of a `(1 + w)` norm; we load `1 + w` (in float32)."""
    return tensor.float() + 1 if name.endswith("norm.weight") else tensor


# llama.cpp already stores `1 + w` for Gemma norms, and names the sandwich norms its own way.
GEMMA3_GGUF_WEIGHT_MAP = GGUF_WEIGHT_MAP.with_rules(
    Rule(_BLK + r"post_attention_norm\.weight", _LAYER + "post_attention_layernorm.weight"),
    Rule(_BLK + r"ffn_norm\.weight", _LAYER + "pre_feedforward_layernorm.weight"),
    Rule(_BLK + r"post_ffw_norm\.weight", _LAYER + "post_feedforward_layernorm.weight"),
)

ARCHITECTURES = [
    SupportedArchitecture(
        "Gemma3ForCausalLM",
        Gemma3ForCausalLM,
        HF_WEIGHT_MAP.with_rules(transform=add_one_to_norms),
        GEMMA3_GGUF_WEIGHT_MAP,
    ),
]
