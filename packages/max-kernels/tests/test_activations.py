import math

import pytest
import torch
from max_kernels.activations import (
    gelu_tanh_and_mul,
    gelu_tanh_and_mul_ref,
    gelu_tanh_and_mul_triton,
    silu_and_mul,
    silu_and_mul_ref,
    silu_and_mul_triton,
)


def _silu_f64(x):
    a, b = x.double().chunk(2, -1)
    return a / (1 + torch.exp(-a)) * b


def _gelu_tanh_f64(x):
    a, b = x.double().chunk(2, -1)
    return 0.5 * a * (1 + torch.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3))) * b


@pytest.mark.parametrize("shape", [(1, 2), (3, 18), (2, 3, 70), (0, 8)])
def test_twins_match_float64(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 4
    torch.testing.assert_close(silu_and_mul(x).double(), _silu_f64(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gelu_tanh_and_mul(x).double(), _gelu_tanh_f64(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 2), (3, 18), (2, 3, 70), (2, 2100), (0, 8)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_triton_matches_twins(shape, dtype):
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 4).to(dtype)
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(silu_and_mul_triton(x), silu_and_mul_ref(x), rtol=tol, atol=tol)
    torch.testing.assert_close(gelu_tanh_and_mul_triton(x), gelu_tanh_and_mul_ref(x), rtol=tol, atol=tol)
