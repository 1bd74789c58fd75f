"""The CPU decode plan: built once per step from host data, it gives the same attention as float64."""

import pytest
import torch
from max_kernels import DecodePlan
from max_kernels.attention import paged_attention


@pytest.mark.parametrize("kv_lens", [[37], [5, 1, 17], [16, 16]])
@pytest.mark.parametrize("window", [None, 4, 64])
@pytest.mark.parametrize("consecutive", [True, False])
def test_plan_matches_float64(paged_batch, attention_f64, kv_lens, window, consecutive):
    page, hq, hk, d = 4, 4, 2, 16
    q, k_cache, v_cache, cu, seq_lens, bt = paged_batch([1] * len(kv_lens), kv_lens, hq, hk, d, page, seed=len(kv_lens))
    if consecutive:  # the pages of the first request in a row: the plan reads a slice, not a gather
        n = -(-kv_lens[0] // page)
        k_cache, v_cache = torch.cat([k_cache, k_cache[bt[0, :n].long()]]), torch.cat([v_cache, v_cache[bt[0, :n].long()]])
        bt[0, :n] = torch.arange(len(k_cache) - n, len(k_cache))
    block_ids = [row[: -(-n // page)] for row, n in zip(bt.tolist(), kv_lens)]
    plan = DecodePlan.build(kv_lens, block_ids, page, "cpu")
    assert isinstance(plan.pages, slice) == (consecutive and len(kv_lens) == 1)
    want = attention_f64(q, k_cache, v_cache, cu, seq_lens, bt, d**-0.5, window)
    out = paged_attention(
        q, k_cache, v_cache, cu, seq_lens, bt, d**-0.5, sliding_window=window, max_seqlen_q=1, decode_plan=plan
    )
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)


def test_plan_read_back_from_tensors_equals_built_plan(paged_batch):
    _, _, _, _, seq_lens, bt = paged_batch([1, 1], [9, 3], 2, 1, 8, 4)
    built = DecodePlan.build([9, 3], [row[:3] for row in bt.tolist()], 4, "cpu")
    read = DecodePlan.of(seq_lens, bt, 4)
    assert read.longest == built.longest == 9
    assert torch.equal(read.pages, built.pages) and torch.equal(read.allowed, built.allowed)
    assert read.mask(2)[1, 0, 0].tolist() == [False, True, True] + [False] * 6  # the last 2 of its 3 keys
    assert read.mask(2)[0, 0, 0].tolist() == [False] * 7 + [True, True]
