"""Per-layer paged KV storage: `k_caches[layer]` and `v_caches[layer]` of shape `[N, P, Hk, D]`."""

from __future__ import annotations

import torch

from max_kvcache.fp8 import dequantize_fp8, fp8_scale, quantize_fp8
from max_kvcache.spec import FP8_SCALE_DTYPE, KVCacheSpec

NULL_BLOCK_ID = 0


class PagedKVCache:
    """The device tensors of a paged cache. Block 0 is the null block: never handed out, used as padding.

    Float8 caches also hold `k_scales[layer]` / `v_scales[layer]` of shape `[N, P, Hk]` (float32);
    `layer_kv` dequantizes on read.
    """

    def __init__(self, spec: KVCacheSpec, num_blocks: int) -> None:
        if num_blocks < 2:
            raise ValueError(f"a paged KV cache needs at least 2 blocks (one is the null block), got {num_blocks}")
        self.spec = spec
        self.num_blocks = num_blocks
        shape = (num_blocks, *spec.page_shape)
        layers = range(spec.num_layers)
        self.k_caches = [torch.zeros(shape, dtype=spec.dtype, device=spec.device) for _ in layers]
        self.v_caches = [torch.zeros(shape, dtype=spec.dtype, device=spec.device) for _ in layers]
        self.k_scales: list[torch.Tensor] = []
        self.v_scales: list[torch.Tensor] = []
        if spec.is_fp8:
            scale_shape = shape[:-1]
            self.k_scales = [torch.ones(scale_shape, dtype=FP8_SCALE_DTYPE, device=spec.device) for _ in layers]
            self.v_scales = [torch.ones(scale_shape, dtype=FP8_SCALE_DTYPE, device=spec.device) for _ in layers]

    def store(self, layer: int, key: torch.Tensor, value: torch.Tensor, slot_mapping: torch.Tensor) -> None:
        """Write `key/value [T, Hk, D]` at `slot_mapping[T]` (slot = block * P + offset).

        A negative slot is skipped: it is redirected to the null block, which nothing reads, so no
        host sync is needed to filter it.
        """
        slots = slot_mapping.to(torch.int64).clamp(min=0)
        for cache, scales, x in (
            (self.k_caches[layer], self.k_scales, key),
            (self.v_caches[layer], self.v_scales, value),
        ):
            flat = cache.view(-1, *cache.shape[2:])
            if self.spec.is_fp8:
                scale = fp8_scale(x)
                # index_copy_ has no float8 kernel on every device: copy the bytes
                flat.view(torch.uint8).index_copy_(0, slots, quantize_fp8(x, scale).view(torch.uint8))
                scales[layer].view(-1, scale.shape[-1]).index_copy_(0, slots, scale)
            else:
                flat.index_copy_(0, slots, x.to(cache.dtype))

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

    def _block_tensors(self) -> list[torch.Tensor]:
        """Every tensor a block spans, in the packed order: per layer k, v, then (float8) k and v scales."""
        tensors = []
        for layer in range(self.spec.num_layers):
            tensors += [self.k_caches[layer], self.v_caches[layer]]
            if self.spec.is_fp8:
                tensors += [self.k_scales[layer], self.v_scales[layer]]
        return tensors

    def pack_blocks(self, block_ids: list[int]) -> torch.Tensor:
        """The raw bytes of `block_ids` as a `[n, bytes_per_block]` uint8 tensor on the cache's device."""
        index = torch.as_tensor(block_ids, dtype=torch.int64, device=self.spec.device)
        parts = [t.view(torch.uint8).index_select(0, index).reshape(len(block_ids), -1) for t in self._block_tensors()]
        return torch.cat(parts, dim=1)

    def unpack_blocks(self, block_ids: list[int], data: torch.Tensor) -> None:
        """Write raw bytes `[n, bytes_per_block]` (as from `pack_blocks`) into `block_ids`."""
        if data.shape != (len(block_ids), self.spec.bytes_per_block):
            raise ValueError(f"expected {(len(block_ids), self.spec.bytes_per_block)} bytes, got {tuple(data.shape)}")
        index = torch.as_tensor(block_ids, dtype=torch.int64, device=self.spec.device)
        data = data.to(self.spec.device)
        start = 0
        for t in self._block_tensors():
            raw = t.view(torch.uint8)
            width = raw[0].numel()
            raw.index_copy_(0, index, data[:, start : start + width].reshape(len(block_ids), *raw.shape[1:]))
            start += width
