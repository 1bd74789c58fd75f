"""Read a GGUF file's metadata into an HF-style config (HF key names), without reading the weights."""

import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .enums import QuantizationEncoding
from .errors import ConfigError
from .gguf_header import ArrayLength, read_gguf_header
from .quantization import gguf_encoding

# GGUF `general.architecture` -> (HF architectures name, HF model_type).
GGUF_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "llama": ("LlamaForCausalLM", "llama"),
    "mistral": ("MistralForCausalLM", "mistral"),
    "qwen2": ("Qwen2ForCausalLM", "qwen2"),
    "qwen3": ("Qwen3ForCausalLM", "qwen3"),
    "gemma": ("GemmaForCausalLM", "gemma"),
    "gemma2": ("Gemma2ForCausalLM", "gemma2"),
    "gemma3": ("Gemma3ForCausalLM", "gemma3_text"),
    "phi3": ("Phi3ForCausalLM", "phi3"),
}

# `{arch}.<suffix>` -> HF config key.
_ARCH_KEYS = {
    "context_length": "max_position_embeddings",
    "embedding_length": "hidden_size",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "attention.key_length": "head_dim",
    "attention.sliding_window": "sliding_window",
    "rope.freq_base": "rope_theta",
    "vocab_size": "vocab_size",
}

_TOKEN_KEYS = {
    "tokenizer.ggml.bos_token_id": "bos_token_id",
    "tokenizer.ggml.eos_token_id": "eos_token_id",
    "tokenizer.ggml.padding_token_id": "pad_token_id",
}


@dataclass(frozen=True)
class GGUFInfo:
    config: dict[str, Any]
    generation_config: dict[str, Any]
    chat_template: str | None
    encoding: QuantizationEncoding


def _scalar(value: Any) -> Any:
    """GGUF arrays of one value per layer collapse to their first value; float32s print as written."""
    if isinstance(value, ArrayLength):
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, float):
        return float(f"{value:.7g}")
    return value


def read_gguf(path: Path, extra_architectures: dict[str, str] | None = None) -> GGUFInfo:
    """Metadata, chat template and weight encoding of a GGUF file. `extra_architectures` maps more
    `general.architecture` values to architecture names (from `--custom-architectures`)."""
    try:
        fields, tensors = read_gguf_header(path)
    except (OSError, ValueError, struct.error) as exc:
        raise ConfigError(f"{path}: not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    arch = fields.get("general.architecture")
    known_archs = {**GGUF_ARCHITECTURES, **{k: (v, k) for k, v in (extra_architectures or {}).items()}}
    if arch not in known_archs:
        known = ", ".join(sorted(known_archs))
        raise ConfigError(
            f"{path}: GGUF architecture {arch!r} is not supported (supported: {known}); a "
            "--custom-architectures entry can claim it in its gguf_architectures"
        )
    hf_name, model_type = known_archs[arch]
    config: dict[str, Any] = {"architectures": [hf_name], "model_type": model_type}
    for suffix, key in _ARCH_KEYS.items():
        value = _scalar(fields.get(f"{arch}.{suffix}"))
        if value is not None:
            config[key] = value
    tensor_names = {tensor.name for tensor in tensors}
    config["num_key_value_heads"] = config.get("num_key_value_heads", config.get("num_attention_heads"))
    if "head_dim" not in config and config.get("num_attention_heads"):
        config["head_dim"] = config["hidden_size"] // config["num_attention_heads"]
    tokens = fields.get("tokenizer.ggml.tokens")
    if "vocab_size" not in config and tokens is not None:
        config["vocab_size"] = tokens.length if isinstance(tokens, ArrayLength) else len(tokens)
    rotary = fields.get(f"{arch}.rope.dimension_count")
    if rotary and config.get("head_dim") and rotary != config["head_dim"]:
        config["partial_rotary_factor"] = rotary / config["head_dim"]
    scaling_type = fields.get(f"{arch}.rope.scaling.type")
    if scaling_type and scaling_type != "none":
        scaling = {"rope_type": scaling_type, "factor": fields.get(f"{arch}.rope.scaling.factor", 1.0)}
        original = fields.get(f"{arch}.rope.scaling.original_context_length")
        if original:
            scaling["original_max_position_embeddings"] = original
        config["rope_scaling"] = scaling
    # transformers 5 spelling of the same RoPE settings.
    config["rope_parameters"] = {
        "rope_theta": config.get("rope_theta", 10000.0),
        **(config.get("rope_scaling") or {"rope_type": "default"}),
    }
    config["tie_word_embeddings"] = "output.weight" not in tensor_names
    generation_config = {}
    for gguf_key, key in _TOKEN_KEYS.items():
        if fields.get(gguf_key) is not None:
            config[key] = generation_config[key] = fields[gguf_key]
    weight_types = Counter(
        tensor.type_name for tensor in tensors if len(tensor.shape) == 2 and tensor.name.endswith(".weight")
    )
    return GGUFInfo(
        config=config,
        generation_config=generation_config,
        chat_template=fields.get("tokenizer.chat_template"),
        encoding=gguf_encoding(weight_types, str(path)),
    )
