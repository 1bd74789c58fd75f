"""The shape of one model's paged KV cache."""

from __future__ import annotations

from dataclasses import dataclass

import torch

KV_FORMATS: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float8_e4m3fn": torch.float8_e4m3fn,
}
FP8_SCALE_DTYPE = torch.float32


@dataclass(frozen=True)
class KVCacheSpec:
    """Layers, KV heads, head dim, tokens per page, storage dtype and device of a paged cache.

    `dtype` may be a torch dtype or a format name (`float32`, `bfloat16`, `float16`,
    `float8_e4m3fn`). Float8 caches have one float32 scale per layer for keys and one for values.
    """

    num_layers: int
    num_kv_heads: int
    head_dim: int
    page_size: int = 128
    dtype: torch.dtype | str = torch.bfloat16
    device: torch.device | str = "cpu"

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_kv_heads", "head_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"KVCacheSpec.{name} must be at least 1, got {getattr(self, name)}")
        page = self.page_size
        if not (1 <= page <= 1024 and page & (page - 1) == 0):
            raise ValueError(f"--kv-cache-page-size must be a power of two from 1 to 1024, got {page}")
        dtype = self.dtype
        if isinstance(dtype, str):
            if dtype not in KV_FORMATS:
                raise ValueError(f"--kv-cache-format must be one of {', '.join(KV_FORMATS)}, got {dtype!r}")
            dtype = KV_FORMATS[dtype]
        if dtype not in KV_FORMATS.values():
            raise ValueError(f"--kv-cache-format must be one of {', '.join(KV_FORMATS)}, got {dtype}")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "device", torch.device(self.device))

    @property
    def format(self) -> str:
        """The format name, e.g. `bfloat16`."""
        return str(self.dtype).removeprefix("torch.")

    @property
    def is_fp8(self) -> bool:
        return self.dtype == torch.float8_e4m3fn

    @property
    def page_shape(self) -> tuple[int, int, int]:
        """One page of one layer's keys (or values): `(P, Hk, D)`."""
        return (self.page_size, self.num_kv_heads, self.head_dim)

    @property
    def bytes_per_block(self) -> int:
        """Device bytes of one block across all layers, keys and values."""
        return 2 * self.num_layers * self.page_size * self.num_kv_heads * self.head_dim * self.dtype.itemsize

    @property
    def packed_block_bytes(self) -> int:
        """Bytes of one block outside the device: its KV, then (float8) every layer's two scales."""
        scales = 2 * self.num_layers * FP8_SCALE_DTYPE.itemsize if self.is_fp8 else 0
        return self.bytes_per_block + scales
