"""`--use-vendor-blas` for GGUF linears: which CUDA implementation is chosen, and the dequantize-then-matmul path."""

import gguf
import pytest
import torch
from max_kernels import kernel_preferences, set_kernel_preferences, use_vendor_blas
from max_kernels.dispatch import KernelPreferences
from max_kernels.gguf import GGMLType, QuantizedWeight
from max_kernels.gguf.linear import _cuda_path, quantized_linear_vendor
from max_kernels.gguf.linear_triton import GEMV_MAX_M
from max_kernels.gguf.synthetic import random_blocks


@pytest.mark.parametrize("m", [1, GEMV_MAX_M, GEMV_MAX_M + 1, 512])
def test_vendor_blas_always_dequantizes_then_multiplies(m):
    assert _cuda_path(m, KernelPreferences(vendor_blas=True)) == "vendor_blas"
    assert _cuda_path(m, KernelPreferences(vendor_blas=True, experimental=True)) == "vendor_blas"


def test_without_vendor_blas_the_fused_kernels_split_at_the_gemv_limit():
    prefs = KernelPreferences()
    assert [_cuda_path(m, prefs) for m in (1, GEMV_MAX_M, GEMV_MAX_M + 1, 4096)] == ["gemv", "gemv", "gemm", "gemm"]


def test_set_kernel_preferences_is_what_use_vendor_blas_reads():
    before = KernelPreferences(**vars(kernel_preferences()))
    try:
        set_kernel_preferences(experimental=True, vendor_blas=True)
        assert use_vendor_blas() and kernel_preferences().experimental
        assert _cuda_path(1, kernel_preferences()) == "vendor_blas"
        set_kernel_preferences()
        assert not use_vendor_blas() and _cuda_path(1, kernel_preferences()) == "gemv"
    finally:
        set_kernel_preferences(before.experimental, before.vendor_blas)


@pytest.mark.parametrize("qtype", [GGMLType.Q4_0, GGMLType.Q8_0, GGMLType.Q4_K, GGMLType.Q6_K])
def test_vendor_path_matches_float64_math_on_gguf_py_weights(qtype):
    shape = (24, 256)
    data = random_blocks(qtype, shape, seed=3)
    qweight = QuantizedWeight(qtype, data, shape, cpu_path="float32")
    x, bias = torch.randn(5, 256), torch.randn(24)
    w = torch.from_numpy(gguf.quants.dequantize(data.numpy(), gguf.GGMLQuantizationType(int(qtype)))).double()
    reference = x.double() @ w.reshape(shape).T + bias.double()
    y = quantized_linear_vendor(x, qweight, bias)  # the Triton dequantize runs in the interpreter here
    assert y.dtype == torch.float32 and y.shape == (5, 24)
    assert ((y.double() - reference).abs().max() / reference.abs().max()).item() < 1e-5
