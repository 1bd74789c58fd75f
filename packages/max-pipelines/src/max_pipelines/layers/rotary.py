"""Rotary position embedding: the cos/sin table computed at load, which attention applies to q and k."""

from __future__ import annotations

import torch
from max_kernels import longrope_positions, rope_cos_sin_cache
from max_kernels.dispatch import use_triton
from max_kernels.rotary import original_context, rope_factors_ref
from torch import nn


def rope_parameters(config: dict, layer_type: str | None = None) -> dict:
    """The RoPE settings of `config` (old `rope_theta`/`rope_scaling` keys or new `rope_parameters`).

    Returns a dict with `rope_theta`, `rope_type` and the scaling keys. Gemma 3's local layers
    (`layer_type="sliding_attention"`) use their nested parameters, or `rope_local_base_freq`.
    """
    params = config.get("rope_parameters")
    if params and isinstance(params.get(layer_type), dict):
        params = params[layer_type]
    elif layer_type == "sliding_attention" and "rope_local_base_freq" in config:
        return {"rope_theta": config["rope_local_base_freq"], "rope_type": "default"}
    elif not params:
        params = dict(config.get("rope_scaling") or {})
        params.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    params = dict(params)
    params["rope_type"] = params.get("rope_type", params.get("type", "default"))
    return params


def rope_scaling(config: dict, params: dict) -> dict | None:
    """The `scaling` argument of `rope_cos_sin_cache`: None for plain RoPE."""
    if params["rope_type"] == "default":
        return None
    scaling = {k: v for k, v in params.items() if k not in ("rope_theta", "partial_rotary_factor")}
    scaling.setdefault("max_position_embeddings", config.get("max_position_embeddings"))
    if "original_max_position_embeddings" in config:
        scaling.setdefault("original_max_position_embeddings", config["original_max_position_embeddings"])
    return scaling


class RotaryEmbedding(nn.Module):
    """A model's RoPE table (rotate-half layout, the first `rotary_dim` features of each head), applied
    by the attention layer as it stores the keys (`rope_kv_store`)."""

    def __init__(self, config: dict, head_dim: int, max_positions: int, layer_type: str | None = None):
        super().__init__()
        params = rope_parameters(config, layer_type)
        factor = params.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0))
        self.rotary_dim = int(head_dim * factor)
        self.base = float(params["rope_theta"])
        self.scaling = rope_scaling(config, params)
        self.max_positions = max_positions
        # longrope: sequences longer than this rotate all their tokens with the long factors
        self.long_from: int | None = None
        if self.scaling and self.scaling["rope_type"] == "longrope":
            self.long_from = original_context(self.scaling, max_positions)
        self.register_buffer("cos_sin_cache", torch.empty(max_positions, self.rotary_dim), persistent=False)
        self._factors_for: torch.Tensor | None = None  # the positions `_factors` were gathered for
        self._factors: tuple[torch.Tensor, torch.Tensor] | None = None

    def init_buffers(self, device: torch.device) -> None:
        """Compute the table (the model is built on the meta device, so this runs after loading)."""
        self.cos_sin_cache = rope_cos_sin_cache(
            self.rotary_dim, self.max_positions, self.base, self.scaling, device
        )

    def table_positions(self, positions: torch.Tensor, md) -> torch.Tensor:
        """The table rows the step's tokens read: their positions, except under longrope, where the
        tokens of a request longer than `long_from` read the long factors (`longrope_positions`); a
        prompt prefilled in chunks counts its whole length from the first chunk on."""
        if self.long_from is None:
            return positions
        lens = md.seq_lens if md.known_lens is None else torch.maximum(md.seq_lens, md.known_lens)
        return longrope_positions(positions, md.cu_seqlens_q, lens, self.long_from, self.max_positions)

    def factors(self, positions: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """What the PyTorch path multiplies by (`rope_factors_ref`), gathered once per `positions`:
        every layer shares this module. None where `x` takes the Triton kernels."""
        if use_triton(x):
            return None
        if self._factors_for is not positions:
            self._factors = rope_factors_ref(positions, self.cos_sin_cache, True)
            self._factors_for = positions
        return self._factors

    def extra_repr(self) -> str:
        return f"rotary_dim={self.rotary_dim}, base={self.base}, scaling={self.scaling}"


def longrope_threshold(model: nn.Module) -> int | None:
    """The sequence length past which `model`'s longrope layers switch every token to the long
    factors, or None without longrope. Prompts past it are cached apart (`Sequence.extra_keys`):
    their KV entries below it are rotated differently from those of shorter prompts."""
    return next((m.long_from for m in model.modules() if isinstance(m, RotaryEmbedding) and m.long_from), None)
