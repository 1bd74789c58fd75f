import pytest
import torch
from max_kernels.fp8 import (
    dequantize_fp8,
    dequantize_fp8_ref,
    dequantize_fp8_triton,
    quantize_fp8,
    quantize_fp8_ref,
    quantize_fp8_triton,
)


def _e4m3_values() -> torch.Tensor:
    """Every finite float8_e4m3fn value, decoded by hand from its bits (sign, 4 exponent, 3 mantissa)."""
    values = []
    for bits in range(256):
        sign, exponent, mantissa = bits >> 7, (bits >> 3) & 0xF, bits & 0x7
        if exponent == 15 and mantissa == 7:
            continue  # NaN
        magnitude = mantissa / 8 * 2.0**-6 if exponent == 0 else (1 + mantissa / 8) * 2.0 ** (exponent - 7)
        values.append(-magnitude if sign else magnitude)
    return torch.tensor(sorted(set(values)), dtype=torch.float64)


def _nearest_e4m3(x: torch.Tensor) -> torch.Tensor:
    grid = _e4m3_values()
    dist = (x.double().clamp(-448, 448)[:, None] - grid[None, :]).abs()
    return grid[dist.argmin(dim=1)]


def test_quantize_rounds_to_nearest_value_and_saturates():
    x = torch.tensor([0.0, 1.0, -3.3, 500.0, -1e6, 0.001, 17.5, 300.0, -0.0123])
    scale = 0.5
    got = quantize_fp8(x, scale)
    assert got.dtype == torch.float8_e4m3fn
    want = _nearest_e4m3(x / scale)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=0)
    torch.testing.assert_close(dequantize_fp8(got, scale, torch.float32).double(), want * scale, rtol=0, atol=0)


@pytest.mark.parametrize("n", [0, 7, 1025, 3000])
@pytest.mark.parametrize("scale", [1.0, 0.037, torch.tensor(3.5)])
def test_triton_quantize_is_bit_identical_to_twin(n, scale):
    x = torch.randn(n, generator=torch.Generator().manual_seed(n)) * 200
    if n:
        x[0] = 448.0 * float(scale) * 1.02  # past the range: saturates
    got, want = quantize_fp8_triton(x, scale), quantize_fp8_ref(x, scale)
    assert torch.equal(got.view(torch.uint8), want.view(torch.uint8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_triton_dequantize_matches_twin(dtype):
    x = quantize_fp8_ref(torch.randn(5, 3, 40) * 10, 1.0)
    torch.testing.assert_close(
        dequantize_fp8_triton(x, 0.25, dtype), dequantize_fp8_ref(x, 0.25, dtype), rtol=0, atol=0
    )
