"""apply_penalties: the twin against a per-token float64 loop, the Triton kernel against the twin."""

import pytest
import torch
from max_kernels.penalties import apply_penalties, apply_penalties_ref, apply_penalties_triton
from max_kernels.sampling import apply_penalties as exported


def penalties_by_hand(logits, counts, prompt_mask, frequency, presence, repetition):
    out = logits.double().clone()
    for b in range(out.shape[0]):
        for v in range(out.shape[1]):
            count = int(counts[b, v])
            if bool(prompt_mask[b, v]) or count > 0:
                r = float(repetition[b])
                out[b, v] = out[b, v] / r if out[b, v] > 0 else out[b, v] * r
            out[b, v] -= float(frequency[b]) * count + float(presence[b]) * (count > 0)
    return out


def make_inputs(batch, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, vocab, generator=g) * 3
    counts = torch.randint(0, 4, (batch, vocab), generator=g) * (torch.rand(batch, vocab, generator=g) < 0.3)
    prompt_mask = torch.rand(batch, vocab, generator=g) < 0.2
    frequency = torch.rand(batch, generator=g) * 4 - 2
    presence = torch.rand(batch, generator=g) * 4 - 2
    repetition = torch.rand(batch, generator=g) * 1.5 + 0.5
    return logits, counts.to(torch.int32), prompt_mask, frequency, presence, repetition


def test_twin_matches_the_definition():
    inputs = make_inputs(3, 50)
    expected = penalties_by_hand(*inputs)
    out = apply_penalties(inputs[0].clone(), *inputs[1:])
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-5)
    assert exported is apply_penalties


def test_neutral_penalties_change_nothing():
    logits, counts, prompt_mask, *_ = make_inputs(2, 40)
    ones, zeros = torch.ones(2), torch.zeros(2)
    assert torch.equal(apply_penalties(logits.clone(), counts, prompt_mask, zeros, zeros, ones), logits)


def test_works_in_place():
    inputs = make_inputs(2, 30)
    logits = inputs[0].clone()
    assert apply_penalties(logits, *inputs[1:]) is logits
    assert not torch.equal(logits, inputs[0])


@pytest.mark.parametrize("batch,vocab", [(3, 1500), (1, 7), (0, 10)])
def test_kernel_matches_twin(batch, vocab):
    inputs = make_inputs(batch, vocab, seed=vocab)
    expected = apply_penalties_ref(inputs[0].clone(), *inputs[1:])
    actual = apply_penalties_triton(inputs[0].clone(), *inputs[1:])
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)


def test_rejects_tables_of_another_shape():
    logits, counts, prompt_mask, frequency, presence, repetition = make_inputs(2, 30)
    with pytest.raises(ValueError, match="penalty tables"):
        apply_penalties(logits, counts[:, :29], prompt_mask, frequency, presence, repetition)
