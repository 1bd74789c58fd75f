"""Token-major views of the paged cache for tiers that store KV per token (LMCache's `KV_2LTD`)."""

from __future__ import annotations

import torch

from max_kvcache.paged_cache import PagedKVCache


def _byte_view(t: torch.Tensor) -> torch.Tensor:
    """Float8 tensors as raw bytes: indexing kernels do not cover float8 on every device."""
    return t.view(torch.uint8) if t.dtype == torch.float8_e4m3fn else t


def gather_2ltd(kv_cache: PagedKVCache, slots: torch.Tensor) -> torch.Tensor:
    """Keys and values of the tokens at `slots[T]` as `[2, num_layers, T, Hk * D]` in the cache dtype."""
    page = kv_cache.spec.page_size
    slots = slots.to(device=kv_cache.spec.device, dtype=torch.int64)
    blocks, offsets = slots // page, slots % page
    rows = [
        _byte_view(cache)[blocks, offsets].reshape(len(slots), -1)
        for caches in (kv_cache.k_caches, kv_cache.v_caches)
        for cache in caches
    ]
    out = torch.stack(rows).reshape(2, kv_cache.spec.num_layers, len(slots), -1)
    return out.view(kv_cache.spec.dtype) if kv_cache.spec.is_fp8 else out


def scatter_2ltd(kv_cache: PagedKVCache, slots: torch.Tensor, data: torch.Tensor) -> None:
    """Write `data [2, num_layers, T, Hk * D]` (as from `gather_2ltd`) to the tokens at `slots[T]`."""
    spec = kv_cache.spec
    slots = slots.to(device=spec.device, dtype=torch.int64)
    blocks, offsets = slots // spec.page_size, slots % spec.page_size
    data = _byte_view(data.to(spec.device))
    for kind, caches in enumerate((kv_cache.k_caches, kv_cache.v_caches)):
        for layer, cache in enumerate(caches):
            target = _byte_view(cache)
            target[blocks, offsets] = data[kind, layer].reshape(len(slots), *target.shape[2:])
