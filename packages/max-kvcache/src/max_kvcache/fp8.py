"""Float8 (e4m3fn) KV quantization with one scale per (token, head)."""

from __future__ import annotations

import torch

FP8_MAX = torch.finfo(torch.float8_e4m3fn).max
_TINY = torch.finfo(torch.float32).tiny


def fp8_scale(x: torch.Tensor) -> torch.Tensor:
    """Scale per row of the last dim so that the row's largest magnitude maps to the fp8 maximum."""
    amax = x.detach().abs().amax(dim=-1).to(torch.float32)
    return torch.clamp(amax / FP8_MAX, min=_TINY)


def quantize_fp8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`x / scale` rounded to float8_e4m3fn; `scale` broadcasts over the last dim."""
    scaled = x.to(torch.float32) / scale.unsqueeze(-1)
    return torch.clamp(scaled, -FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)


def dequantize_fp8(x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`x * scale` in `dtype`."""
    return (x.to(torch.float32) * scale.unsqueeze(-1)).to(dtype)
