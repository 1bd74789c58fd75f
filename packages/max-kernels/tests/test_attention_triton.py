"""Triton paged attention (prefill and split-K decode) against the PyTorch twin, in the interpreter."""

import pytest
import torch
from max_kernels.attention import paged_attention_ref, paged_attention_triton
from max_kernels.attention_decode import decode_attention
from max_kernels.attention_prefill import prefill_attention
from max_kernels.fp8 import quantize_fp8_ref

PREFILL_CASES = [
    # q_lens, kv_lens, hq, hk, d, page
    ([4, 3], [4, 10], 2, 2, 16, 3),  # the second request has a cached prefix
    ([1, 5, 2], [9, 21, 3], 4, 2, 32, 4),  # mixed with decode rows, GQA, tails
    ([3, 1], [7, 2], 2, 1, 16, 1),  # page size 1
    ([5], [300], 2, 1, 16, 256),  # page size 256
    ([18], [18], 2, 2, 24, 5),  # head dim not a power of two, query run longer than a block
]


def _compare(got, q, k_cache, v_cache, cu, seq_lens, bt, scale, window, softcap, tol):
    want = paged_attention_ref(q, k_cache, v_cache, cu, seq_lens, bt, scale, sliding_window=window, softcap=softcap)
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("q_lens,kv_lens,hq,hk,d,page", PREFILL_CASES)
@pytest.mark.parametrize("window,softcap", [(None, None), (6, None), (None, 3.0)])
def test_prefill_matches_twin(paged_batch, q_lens, kv_lens, hq, hk, d, page, window, softcap):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch(q_lens, kv_lens, hq, hk, d, page, seed=d)
    out = torch.full_like(q, float("nan"))
    prefill_attention(q, k_cache, v_cache, out, cu, seq_lens, bt, d**-0.5, window, softcap, None, max(q_lens), 16, 16)
    _compare(out, q, k_cache, v_cache, cu, seq_lens, bt, d**-0.5, window, softcap, 1e-5)


def test_prefill_with_gpu_block_sizes_and_float16(paged_batch):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch([2, 3], [70, 3], 2, 1, 16, 8, dtype=torch.float16)
    out = paged_attention_triton(q, k_cache, v_cache, cu, seq_lens, bt, 0.25, softcap=10.0)
    _compare(out, q, k_cache, v_cache, cu, seq_lens, bt, 0.25, None, 10.0, 2e-3)


DECODE_CASES = [
    # kv_lens, hq, hk, d, page, num_splits
    ([5, 1, 17], 4, 2, 16, 4, 1),
    ([5, 1, 17], 4, 2, 16, 4, 3),  # more splits than some requests have tiles
    ([40, 9], 2, 1, 32, 1, 4),  # page size 1
    ([300, 20], 4, 4, 16, 256, 2),  # page size 256
    ([33], 6, 2, 24, 7, 2),  # group of 3, head dim 24, odd page size
]


@pytest.mark.parametrize("kv_lens,hq,hk,d,page,num_splits", DECODE_CASES)
@pytest.mark.parametrize("window,softcap", [(None, None), (10, None), (None, 2.0)])
def test_decode_matches_twin(paged_batch, kv_lens, hq, hk, d, page, num_splits, window, softcap):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch([1] * len(kv_lens), kv_lens, hq, hk, d, page, seed=page)
    out = torch.full_like(q, float("nan"))
    decode_attention(q, k_cache, v_cache, out, cu, seq_lens, bt, d**-0.5, window, softcap, None, num_splits, 16)
    _compare(out, q, k_cache, v_cache, cu, seq_lens, bt, d**-0.5, window, softcap, 1e-5)


def test_decode_default_launch_float16(paged_batch):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch([1, 1], [90, 4], 4, 2, 16, 16, dtype=torch.float16)
    out = paged_attention_triton(q, k_cache, v_cache, cu, seq_lens, bt, 0.25, max_seqlen_q=1)
    _compare(out, q, k_cache, v_cache, cu, seq_lens, bt, 0.25, None, None, 2e-3)


@pytest.mark.parametrize("max_seqlen_q", [None, 1, 4])
def test_empty_batch(paged_batch, max_seqlen_q):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch([], [], 2, 1, 16, 4)
    assert paged_attention_triton(q, k_cache, v_cache, cu, seq_lens, bt, 0.3, max_seqlen_q=max_seqlen_q).shape == (
        0,
        2,
        16,
    )


@pytest.mark.parametrize("q_lens,kv_lens,max_seqlen_q", [([3, 1], [9, 5], 3), ([1, 1], [20, 3], 1)])
def test_float8_cache_with_scales(paged_batch, q_lens, kv_lens, max_seqlen_q):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch(q_lens, kv_lens, 4, 2, 16, 4)
    k8, v8 = quantize_fp8_ref(k_cache, 0.02), quantize_fp8_ref(v_cache, 0.05)
    kwargs = {"k_scale": torch.tensor(0.02), "v_scale": 0.05}
    got = paged_attention_triton(q, k8, v8, cu, seq_lens, bt, 0.25, max_seqlen_q=max_seqlen_q, softcap=4.0, **kwargs)
    want = paged_attention_ref(q, k8, v8, cu, seq_lens, bt, 0.25, softcap=4.0, **kwargs)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("q_lens,max_seqlen_q", [([1, 0, 1], 1), ([2, 0, 1], 2)])
def test_requests_without_queries_are_skipped(paged_batch, q_lens, max_seqlen_q):
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch(q_lens, [6, 4, 9], 2, 1, 16, 4)
    got = paged_attention_triton(q, k_cache, v_cache, cu, seq_lens, bt, 0.25, max_seqlen_q=max_seqlen_q)
    want = paged_attention_ref(q, k_cache, v_cache, cu, seq_lens, bt, 0.25)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
