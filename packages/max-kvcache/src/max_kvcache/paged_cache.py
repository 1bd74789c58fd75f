"""Per-layer paged KV storage: `k_caches[layer]` and `v_caches[layer]` of shape `[N, P, Hk, D]`."""

from __future__ import annotations

import math

import numpy as np
import torch

from max_kernels import dequantize_fp8, store_kvcache
from max_kvcache.spec import FP8_SCALE_DTYPE, KVCacheSpec

NULL_BLOCK_ID = 0


def scatter_rows(dst: torch.Tensor, index: list[int], src: torch.Tensor) -> None:
    """`dst[index[i]] = src[i]`. On the CPU `index_copy_` is slow for wide rows, so runs of consecutive
    targets are copied as slices."""
    if dst.device.type == "cpu":
        start = 0
        for end in range(1, len(index) + 1):
            if end == len(index) or index[end] != index[end - 1] + 1:
                dst[index[start] : index[start] + end - start].copy_(src[start:end])
                start = end
    else:
        dst.index_copy_(0, torch.as_tensor(index, dtype=torch.int64, device=dst.device), src.to(dst.device))


def zeros(shape: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
    """A zeroed tensor. On the CPU its memory comes from calloc (through numpy): the pages are zero
    when first touched, so a cache sized for the longest requests costs no time to clear and no
    resident memory until it is written (torch.zeros would write every byte at once)."""
    if torch.device(device).type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
    return torch.from_numpy(np.zeros(nbytes, dtype=np.uint8)).view(dtype).view(shape)


class PagedKVCache:
    """The device tensors of a paged cache. Block 0 is the null block: never handed out, used as padding.

    Float8 caches also hold per-tensor scales `k_scales[layer]` / `v_scales[layer]` (one float32 each,
    default 1; a model with calibrated scales copies them in): the cache stores `x / scale` and
    `layer_kv` dequantizes on read. A packed block row carries the scales it was written with, and
    `matching_rows` refuses rows whose scales differ from this cache's.
    """

    def __init__(self, spec: KVCacheSpec, num_blocks: int) -> None:
        if num_blocks < 2:
            raise ValueError(f"a paged KV cache needs at least 2 blocks (one is the null block), got {num_blocks}")
        self.spec = spec
        self.num_blocks = num_blocks
        shape = (num_blocks, *spec.page_shape)
        layers = range(spec.num_layers)
        self.k_caches = [zeros(shape, spec.dtype, spec.device) for _ in layers]
        self.v_caches = [zeros(shape, spec.dtype, spec.device) for _ in layers]
        self.k_scales: list[torch.Tensor] = []
        self.v_scales: list[torch.Tensor] = []
        if spec.is_fp8:
            self.k_scales = [torch.ones(1, dtype=FP8_SCALE_DTYPE, device=spec.device) for _ in layers]
            self.v_scales = [torch.ones(1, dtype=FP8_SCALE_DTYPE, device=spec.device) for _ in layers]

    def _scales(self, layer: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return (self.k_scales[layer], self.v_scales[layer]) if self.spec.is_fp8 else (None, None)

    def store(self, layer: int, key: torch.Tensor, value: torch.Tensor, slot_mapping: torch.Tensor) -> None:
        """Write `key/value [T, Hk, D]` at `slot_mapping[T]` (slot = block * P + offset; negative: skipped)."""
        k_scale, v_scale = self._scales(layer)
        store_kvcache(key, value, self.k_caches[layer], self.v_caches[layer], slot_mapping, k_scale, v_scale)

    def layer_kv(self, layer: int, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """This layer's `(k_cache, v_cache)`, dequantized to `dtype` (default bfloat16) for float8."""
        k, v = self.k_caches[layer], self.v_caches[layer]
        if not self.spec.is_fp8:
            return k, v
        out = dtype or torch.bfloat16
        return dequantize_fp8(k, self.k_scales[layer], out), dequantize_fp8(v, self.v_scales[layer], out)

    def gather_tokens(
        self, layer: int, block_ids: list[int], num_tokens: int, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `num_tokens` keys and values `[num_tokens, Hk, D]` held by `block_ids`, in order."""
        k, v = self.layer_kv(layer, dtype)
        index = torch.as_tensor(block_ids, dtype=torch.int64, device=k.device)
        flat_k = k.index_select(0, index).flatten(0, 1)[:num_tokens]
        flat_v = v.index_select(0, index).flatten(0, 1)[:num_tokens]
        return flat_k, flat_v

    def _scale_bytes(self) -> torch.Tensor:
        if not self.spec.is_fp8:
            return torch.empty(0, dtype=torch.uint8, device=self.spec.device)
        pairs = [s for layer in range(self.spec.num_layers) for s in (self.k_scales[layer], self.v_scales[layer])]
        return torch.cat(pairs).view(torch.uint8)

    def pack_blocks(self, block_ids: list[int]) -> torch.Tensor:
        """The raw bytes of `block_ids` as a `[n, packed_block_bytes]` uint8 tensor on the cache's device.

        Per layer the block's keys then values, then (float8) the scales they were written with.
        """
        n = len(block_ids)
        index = torch.as_tensor(block_ids, dtype=torch.int64, device=self.spec.device)
        parts = []
        for k, v in zip(self.k_caches, self.v_caches):
            parts += [t.view(torch.uint8).index_select(0, index).reshape(n, -1) for t in (k, v)]
        parts.append(self._scale_bytes().expand(n, -1))
        return torch.cat(parts, dim=1)

    def matching_rows(self, data: torch.Tensor) -> int:
        """How many leading packed rows were written with this cache's float8 scales (all, otherwise)."""
        if not self.spec.is_fp8 or data.shape[0] == 0:
            return data.shape[0]
        tail = data[:, self.spec.bytes_per_block :].to(self.spec.device)
        same = (tail == self._scale_bytes()).all(dim=1).tolist()
        return same.index(False) if False in same else len(same)

    def unpack_blocks(self, block_ids: list[int], data: torch.Tensor) -> None:
        """Write packed rows `[n, packed_block_bytes]` (from `pack_blocks`, same scales) into `block_ids`."""
        n = len(block_ids)
        if data.shape != (n, self.spec.packed_block_bytes):
            raise ValueError(f"expected {(n, self.spec.packed_block_bytes)} bytes, got {tuple(data.shape)}")
        if self.matching_rows(data) != n:
            raise ValueError("packed KV blocks were written with other float8 scales")
        data = data.to(self.spec.device)
        start = 0
        for k, v in zip(self.k_caches, self.v_caches):
            for t in (k, v):
                raw = t.view(torch.uint8)
                width = raw[0].numel()
                scatter_rows(raw, block_ids, data[:, start : start + width].reshape(n, *raw.shape[1:]))
                start += width
