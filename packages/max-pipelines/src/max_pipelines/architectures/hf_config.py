"""Readers for Hugging Face `config.json` keys shared by several architectures."""

from __future__ import annotations

SLIDING = "sliding_attention"
FULL = "full_attention"


def head_dim(config: dict) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def num_kv_heads(config: dict) -> int:
    return config.get("num_key_value_heads") or config["num_attention_heads"]


def layer_types(config: dict) -> list[str]:
    """`sliding_attention` or `full_attention` for each layer, from new or old config keys."""
    n = config["num_hidden_layers"]
    if config.get("layer_types"):
        return list(config["layer_types"])
    if config.get("sliding_window") is None or config.get("use_sliding_window") is False:
        return [FULL] * n
    if "sliding_window_pattern" in config:
        pattern = config["sliding_window_pattern"]
        return [FULL if (i + 1) % pattern == 0 else SLIDING for i in range(n)]
    if "max_window_layers" in config:
        return [SLIDING if i >= config["max_window_layers"] else FULL for i in range(n)]
    return [SLIDING] * n


def sliding_window(config: dict, layer_idx: int) -> int | None:
    """The layer's window in tokens (a query sees itself and the `window - 1` tokens before it)."""
    if layer_types(config)[layer_idx] != SLIDING:
        return None
    return config.get("sliding_window")
