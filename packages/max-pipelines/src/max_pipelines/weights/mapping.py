"""Checkpoint tensor names -> our parameter names.

Our parameter names follow Hugging Face's, except that projections we fuse (q/k/v into
`qkv_proj`, gate/up into `gate_up_proj`) receive their checkpoint tensors as numbered shards,
concatenated along the output dimension in shard order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

# (checkpoint name, tensor, model config) -> tensor; runs before the name is mapped. For packed
# GGUF tensors it receives the raw rows `[out, bytes_per_row]`, so only row operations are valid.
Transform = Callable[[str, torch.Tensor, dict], torch.Tensor]


@dataclass(frozen=True)
class Target:
    """Where one checkpoint tensor goes: parameter `name`, as shard `shard` of `num_shards`."""

    name: str
    shard: int = 0
    num_shards: int = 1


@dataclass(frozen=True)
class Rule:
    """A checkpoint name matching `pattern` (whole name, regex) becomes `target` (with `\\1` groups)."""

    pattern: str
    target: str
    shard: int = 0
    num_shards: int = 1


@dataclass(frozen=True)
class WeightMap:
    """First matching rule wins; names matching `ignore` are skipped; others keep their name."""

    rules: tuple[Rule, ...] = ()
    ignore: tuple[str, ...] = ()
    transform: Transform | None = None
    _compiled: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple((re.compile(r.pattern), r) for r in self.rules)
        object.__setattr__(self, "_compiled", compiled)

    def resolve(self, name: str) -> Target | None:
        """Our target for checkpoint tensor `name`, or None when it is not needed."""
        if any(re.fullmatch(p, name) for p in self.ignore):
            return None
        for pattern, rule in self._compiled:
            m = pattern.fullmatch(name)
            if m:
                return Target(m.expand(rule.target), rule.shard, rule.num_shards)
        return Target(name)

    def with_rules(self, *rules: Rule, transform: Transform | None = None) -> WeightMap:
        """This map with `rules` tried first (and `transform` replacing the current one, if given)."""
        return WeightMap(rules + self.rules, self.ignore, transform or self.transform)


def _fused(prefix: str, parts: list[str], fused: str, suffix: str = r"(weight|bias)") -> tuple[Rule, ...]:
    return tuple(
        Rule(rf"(.+)\.{prefix}\.{part}\.{suffix}", rf"\1.{prefix}.{fused}.\2", i, len(parts))
        for i, part in enumerate(parts)
    )


# Hugging Face safetensors checkpoints with separate q/k/v and gate/up projections.
HF_WEIGHT_MAP = WeightMap(
    rules=_fused("self_attn", ["q_proj", "k_proj", "v_proj"], "qkv_proj")
    + _fused("mlp", ["gate_proj", "up_proj"], "gate_up_proj"),
    ignore=(r".*rotary_emb\.inv_freq",),
)

_BLK = r"blk\.(\d+)\."
_LAYER = r"model.layers.\1."

# llama.cpp tensor names (gguf-py `tensor_mapping.py`) for the Llama-shaped families.
GGUF_WEIGHT_MAP = WeightMap(
    rules=(
        Rule(r"token_embd\.weight", "model.embed_tokens.weight"),
        Rule(r"output_norm\.weight", "model.norm.weight"),
        Rule(r"output\.weight", "lm_head.weight"),
        Rule(_BLK + r"attn_norm\.weight", _LAYER + "input_layernorm.weight"),
        Rule(_BLK + r"ffn_norm\.weight", _LAYER + "post_attention_layernorm.weight"),
        Rule(_BLK + r"attn_q\.(weight|bias)", _LAYER + r"self_attn.qkv_proj.\2", 0, 3),
        Rule(_BLK + r"attn_k\.(weight|bias)", _LAYER + r"self_attn.qkv_proj.\2", 1, 3),
        Rule(_BLK + r"attn_v\.(weight|bias)", _LAYER + r"self_attn.qkv_proj.\2", 2, 3),
        Rule(_BLK + r"attn_qkv\.(weight|bias)", _LAYER + r"self_attn.qkv_proj.\2"),
        Rule(_BLK + r"attn_output\.weight", _LAYER + "self_attn.o_proj.weight"),
        Rule(_BLK + r"attn_q_norm\.weight", _LAYER + "self_attn.q_norm.weight"),
        Rule(_BLK + r"attn_k_norm\.weight", _LAYER + "self_attn.k_norm.weight"),
        Rule(_BLK + r"ffn_gate\.weight", _LAYER + "mlp.gate_up_proj.weight", 0, 2),
        Rule(_BLK + r"ffn_up\.weight", _LAYER + "mlp.gate_up_proj.weight", 1, 2),
        Rule(_BLK + r"ffn_down\.weight", _LAYER + "mlp.down_proj.weight"),
    ),
    # RoPE frequency factors are computed from the config's rope scaling instead.
    ignore=(r"rope_freqs\.weight", r"rope_factors_(long|short)\.weight"),
)


def unpermute_llama_qk(name: str, tensor: torch.Tensor, config: dict) -> torch.Tensor:
    """Undo llama.cpp's q/k row permutation (rotate-half -> interleaved pairs) for Llama GGUFs.

    The converter reshapes rows as `(heads, 2, dim/2)` and swaps the last two axes; swapping
    back restores Hugging Face's order, so RoPE runs in its usual rotate-half layout.
    """
    if ".attn_q." in name:
        heads = config["num_attention_heads"]
    elif ".attn_k." in name:
        heads = config.get("num_key_value_heads") or config["num_attention_heads"]
    else:
        return tensor
    rows = tensor.shape[0]
    return tensor.reshape(heads, rows // heads // 2, 2, *tensor.shape[1:]).transpose(1, 2).reshape(tensor.shape)
