"""apply_token_bitmask: the twin against per-token bit arithmetic, the Triton kernel against the twin."""

import pytest
import torch
from max_kernels.bitmask import apply_token_bitmask, apply_token_bitmask_ref, apply_token_bitmask_triton
from max_kernels.sampling import apply_token_bitmask as exported


def random_bitmask(batch, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(-(2**31), 2**31, (batch, (vocab + 31) // 32), generator=g, dtype=torch.int64)
    return words.to(torch.int32)


def test_twin_matches_bit_arithmetic():
    logits = torch.randn(3, 70)
    bitmask = random_bitmask(3, 70)
    out = apply_token_bitmask(logits.clone(), bitmask)
    for b in range(3):
        for v in range(70):
            allowed = (int(bitmask[b, v // 32]) & 0xFFFFFFFF) >> (v % 32) & 1
            assert out[b, v] == (logits[b, v] if allowed else float("-inf"))
    assert exported is apply_token_bitmask


def test_full_mask_keeps_everything_and_sign_bit_counts():
    logits = torch.randn(2, 64)
    all_allowed = torch.full((2, 2), -1, dtype=torch.int32)
    assert torch.equal(apply_token_bitmask(logits.clone(), all_allowed), logits)
    only_31 = torch.tensor([[-(2**31), 0]] * 2, dtype=torch.int32)
    out = apply_token_bitmask(logits.clone(), only_31)
    assert torch.isfinite(out).nonzero()[:, 1].tolist() == [31, 31]


@pytest.mark.parametrize("batch,vocab", [(3, 1500), (2, 33), (0, 10)])
def test_kernel_matches_twin(batch, vocab):
    logits = torch.randn(batch, vocab)
    bitmask = random_bitmask(batch, vocab, seed=vocab)
    expected = apply_token_bitmask_ref(logits.clone(), bitmask)
    assert torch.equal(apply_token_bitmask_triton(logits.clone(), bitmask), expected)


def test_rejects_a_bitmask_too_short_for_the_vocabulary():
    with pytest.raises(ValueError, match=r"int32 \[2, 3\]"):
        apply_token_bitmask(torch.zeros(2, 65), torch.zeros(2, 2, dtype=torch.int32))
