"""float8_e4m3fn quantization with a per-tensor scale, for the KV cache.

`quantize_fp8(x, scale)` stores `x / scale`, clamped to the format's range (±448) and rounded to
nearest-even; `dequantize_fp8(q, scale, dtype)` returns `q * scale` in `dtype`.
"""

import torch

from max_kernels.dispatch import import_triton, use_triton

triton, tl = import_triton()

FP8_MAX = 448.0


@triton.jit
def round_to_e4m3(x):
    """Round float32 `x` (already within ±448) to the nearest e4m3 value, ties to even.

    Adding and subtracting `1.5 * 2**23 * ulp` rounds to a multiple of `ulp` in float32 arithmetic;
    `ulp` is 2**-3 of the value's binade (2**-9 for subnormals). The cast that follows is then exact.
    """
    a = tl.abs(x)
    binade = (a.to(tl.int32, bitcast=True) >> 23) & 0xFF
    ulp_bits = (tl.maximum(binade, 127 - 6) - 3) << 23
    magic = ulp_bits.to(tl.float32, bitcast=True) * 12582912.0
    r = (a + magic) - magic
    return tl.where(x < 0, -r, r)


@triton.jit
def cache_value(x, scale_ptr, FP8: tl.constexpr):
    """`x`, or for a float8 cache `x / scale` rounded to e4m3 (as `quantize_fp8`)."""
    if FP8:
        x = round_to_e4m3(tl.clamp(x.to(tl.float32) / tl.load(scale_ptr), -448.0, 448.0))
    return x


@triton.jit
def _quantize_kernel(x_ptr, out_ptr, scale_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32) / tl.load(scale_ptr)
    y = round_to_e4m3(tl.clamp(x, -448.0, 448.0))
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _dequantize_kernel(x_ptr, out_ptr, scale_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32) * tl.load(scale_ptr)
    tl.store(out_ptr + offs, x.to(out_ptr.dtype.element_ty), mask=mask)


def scale_tensor(scale: float | torch.Tensor, device) -> torch.Tensor:
    """A one-element float32 tensor on `device` (kernels read the scale from memory, never the host)."""
    if isinstance(scale, torch.Tensor):
        assert scale.numel() == 1, "fp8 scales are per tensor"
        return scale.reshape(1).to(device=device, dtype=torch.float32)
    return torch.full((1,), float(scale), dtype=torch.float32, device=device)


def cache_scales(
    cache: torch.Tensor, k_scale: float | torch.Tensor | None, v_scale: float | torch.Tensor | None, unused: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k and v scale arguments of a kernel that writes `cache`: for a float8 cache, `k_scale` and
    `v_scale` (default 1) as `scale_tensor`s; otherwise `unused` twice (any tensor: never read)."""
    if cache.dtype != torch.float8_e4m3fn:
        return unused, unused
    return scale_tensor(1.0 if k_scale is None else k_scale, cache.device), scale_tensor(
        1.0 if v_scale is None else v_scale, cache.device
    )


def _launch(kernel, x, out, scale):
    n = x.numel()
    if n > 0:
        block = 1024
        kernel[(triton.cdiv(n, block),)](
            x.contiguous(), out, scale_tensor(scale, x.device), n, BLOCK=block, num_warps=4
        )
    return out


def quantize_fp8_triton(x, scale):
    return _launch(_quantize_kernel, x, torch.empty(x.shape, dtype=torch.float8_e4m3fn, device=x.device), scale)


def dequantize_fp8_triton(x, scale, dtype):
    return _launch(_dequantize_kernel, x, torch.empty(x.shape, dtype=dtype, device=x.device), scale)


def quantize_fp8_ref(x, scale):
    return (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)


def dequantize_fp8_ref(x, scale, dtype):
    return (x.float() * scale).to(dtype)


def quantize_fp8(x: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    return quantize_fp8_triton(x, scale) if use_triton(x) else quantize_fp8_ref(x, scale)


def dequantize_fp8(x: torch.Tensor, scale: float | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return dequantize_fp8_triton(x, scale, dtype) if use_triton(x) else dequantize_fp8_ref(x, scale, dtype)
