"""The PyTorch twin of paged attention against plain float64 attention."""

import pytest
import torch
from max_kernels.attention import paged_attention
from max_kernels.fp8 import quantize_fp8_ref

CASES = [
    # q_lens, kv_lens, hq, hk, d, page
    ([1, 1, 1], [5, 1, 17], 4, 2, 16, 4),  # decode batch, GQA
    ([4, 3], [4, 10], 2, 2, 8, 3),  # prefill, the second with a cached prefix
    ([1, 6, 1, 2], [9, 6, 3, 40], 4, 1, 16, 16),  # mixed batch, MQA
    ([3, 1], [7, 2], 2, 1, 8, 1),  # page size 1
    ([5, 1], [300, 260], 2, 2, 8, 256),  # page size 256, several pages
]


@pytest.mark.parametrize("q_lens,kv_lens,hq,hk,d,page", CASES)
@pytest.mark.parametrize("window,softcap", [(None, None), (4, None), (None, 5.0), (3, 2.0)])
def test_twin_matches_float64(paged_batch, attention_f64, q_lens, kv_lens, hq, hk, d, page, window, softcap):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch(q_lens, kv_lens, hq, hk, d, page, seed=len(q_lens))
    scale = d**-0.5
    out = paged_attention(q, k_cache, v_cache, cu, seq_lens, bt, scale, sliding_window=window, softcap=softcap)
    want = attention_f64(q, k_cache, v_cache, cu, seq_lens, bt, scale, window, softcap)
    assert out.dtype == q.dtype and out.shape == q.shape
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)


def test_twin_half_precision(paged_batch, attention_f64):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch([3, 1], [8, 12], 4, 2, 16, 4, dtype=torch.bfloat16)
    out = paged_attention(q, k_cache, v_cache, cu, seq_lens, bt, 0.25)
    assert out.dtype == torch.bfloat16
    want = attention_f64(q, k_cache, v_cache, cu, seq_lens, bt, 0.25)
    torch.testing.assert_close(out.double(), want, rtol=2e-2, atol=2e-2)


def test_twin_empty_batch(paged_batch):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch([], [], 2, 1, 8, 4)
    out = paged_attention(q, k_cache, v_cache, cu, seq_lens, bt, 0.3)
    assert out.shape == (0, 2, 8)


def test_twin_float8_cache_dequantizes_with_scales(paged_batch, attention_f64):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch([2, 1], [6, 9], 2, 1, 16, 4)
    k8, v8 = quantize_fp8_ref(k_cache, 0.03), quantize_fp8_ref(v_cache, 0.01)
    out = paged_attention(q, k8, v8, cu, seq_lens, bt, 0.25, k_scale=0.03, v_scale=torch.tensor(0.01))
    want = attention_f64(q, k8.double() * 0.03, v8.double() * 0.01, cu, seq_lens, bt, 0.25)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
