"""Shared fixtures: a minimal request as the scheduler passes it, and a stand-in forward pass."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest
import torch

from max_kvcache import build_slot_mapping


@dataclass
class FakeRequest:
    request_id: str
    all_token_ids: list[int]
    num_prompt_tokens: int = 0
    num_computed_tokens: int = 0
    extra_keys: tuple = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self.num_prompt_tokens = self.num_prompt_tokens or len(self.all_token_ids)


def reference_kv(tokens: list[int], pos: int, heads: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What a model writes at `pos`: a pseudo-random function of the tokens up to it."""
    seed = int.from_bytes(hashlib.sha256(repr(tokens[: pos + 1]).encode()).digest()[:8], "little")
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(heads, dim, generator=gen), torch.randn(heads, dim, generator=gen)


def _prefill(manager, req) -> int:
    """Admit `req` like a scheduler, then write every layer's KV for the tokens not served by the cache."""
    hit = manager.get_computed_tokens(req)
    req.num_computed_tokens = hit
    assert manager.allocate_slots(req, len(req.all_token_ids) - hit)
    cache, spec = manager.kv_cache, manager.spec
    count = len(req.all_token_ids) - hit
    slots = build_slot_mapping([manager.block_ids(req)], [hit], [count], spec.page_size)
    pairs = [reference_kv(req.all_token_ids, p, spec.num_kv_heads, spec.head_dim) for p in range(hit, hit + count)]
    for layer in range(spec.num_layers):
        scale = layer + 1.0
        key = torch.stack([k for k, _ in pairs]) * scale
        value = torch.stack([v for _, v in pairs]) * scale
        cache.store(layer, key, value, slots)
    req.num_computed_tokens = len(req.all_token_ids)
    return hit


@pytest.fixture
def make_request():
    return FakeRequest


@pytest.fixture
def prefill():
    return _prefill
