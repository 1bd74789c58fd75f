"""Encoding float weights into GGUF blocks (the inverse of `dequantize` for the types here)."""

from __future__ import annotations

import torch


def quantize_q8_0(weight: torch.Tensor) -> torch.Tensor:
    """`[rows, cols]` float -> Q8_0 blocks `[rows, cols / 32 * 34]` uint8 (`d = max|w| / 127` per block,
    stored as float16, then `q = round(w / d)`). A table that was Q8_0 comes back bit for bit."""
    rows, cols = weight.shape
    if cols % 32:
        raise ValueError(f"Q8_0 rows hold whole blocks of 32, got {cols} columns")
    blocks = weight.detach().float().reshape(rows, cols // 32, 32)
    d = (blocks.abs().amax(-1) / 127).to(torch.float16)
    inv = torch.where(d > 0, 1 / d.float(), torch.zeros((), dtype=torch.float32))
    q = (blocks * inv[..., None]).round_().clamp_(-127, 127).to(torch.int8)
    out = torch.cat([d[..., None].view(torch.uint8).reshape(rows, cols // 32, 2), q.view(torch.uint8)], dim=-1)
    return out.reshape(rows, cols // 32 * 34)
