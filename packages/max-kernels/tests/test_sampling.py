"""sample: the twin against float64 math (greedy, filters, distribution, batch independence), the
Triton kernel against the twin."""

import math

import pytest
import torch
from max_kernels.sampling import sample, sample_ref, sample_triton, uniform_noise


def params(batch, temperature=1.0, top_k=-1, top_p=1.0, min_p=0.0, seed=0, step=0):
    """Per-row parameter tensors; scalars are broadcast, seeds differ per row."""

    def col(value, dtype):
        return torch.as_tensor(value, dtype=dtype).expand(batch).clone()

    return dict(
        temperature=col(temperature, torch.float32),
        top_k=col(top_k, torch.int32),
        top_p=col(top_p, torch.float32),
        min_p=col(min_p, torch.float32),
        seeds=col(seed, torch.int64) + torch.arange(batch),
        steps=col(step, torch.int64),
    )


def allowed_probs(logits, temperature, top_k, top_p, min_p) -> torch.Tensor:
    """The filtered, renormalized distribution of one row, in float64, from a sort."""
    probs = torch.softmax(logits.double() / temperature, -1)
    keep = torch.ones_like(probs, dtype=torch.bool)
    ranked = probs.sort(descending=True).values
    if 0 < top_k < probs.numel():
        keep &= probs >= ranked[top_k - 1]
    if top_p < 1:
        kept = torch.where(keep, probs, 0.0)
        ranked = kept.sort(descending=True).values
        before = ranked.cumsum(0) - ranked  # mass of the strictly more likely tokens
        edge = ranked[before < top_p * kept.sum()][-1]
        keep &= probs >= edge
    keep &= probs >= min_p * probs.max()
    kept = torch.where(keep, probs, 0.0)
    return kept / kept.sum()


def chi_square_ok(counts: torch.Tensor, probs: torch.Tensor) -> bool:
    support = probs > 0
    expected = probs[support] * counts.sum()
    stat = (((counts[support] - expected) ** 2) / expected).sum().item()
    dof = max(int(support.sum()) - 1, 1)
    critical = dof * (1 - 2 / (9 * dof) + 4.3 * math.sqrt(2 / (9 * dof))) ** 3  # p ~ 1e-5
    return stat < critical


def test_greedy_rows_take_the_argmax():
    logits = torch.randn(5, 300)
    logits[2, 17] = logits[2, 250] = logits[2].max() + 1  # a tie: the first index wins
    p = params(5, temperature=0.0, top_k=3, top_p=0.5)
    expected = logits.double().argmax(-1)
    assert torch.equal(sample(logits, **p), expected)
    assert torch.equal(sample_triton(logits, **p), expected)
    assert sample(logits, **p)[2] == 17


@pytest.mark.parametrize(
    "temperature,top_k,top_p,min_p",
    [(1.0, -1, 1.0, 0.0), (0.7, 3, 1.0, 0.0), (1.3, -1, 0.6, 0.0), (1.0, 0, 1.0, 0.2), (0.9, 5, 0.8, 0.1)],
)
def test_draws_follow_the_filtered_distribution(temperature, top_k, top_p, min_p):
    torch.manual_seed(0)
    logits = torch.randn(1, 12) * 1.5
    draws = 4000
    ids = sample(logits.expand(draws, -1), **params(draws, temperature, top_k, top_p, min_p, seed=99))
    probs = allowed_probs(logits[0], temperature, top_k, top_p, min_p)
    counts = torch.bincount(ids, minlength=12).double()
    assert (counts[probs == 0] == 0).all(), "a filtered token was drawn"
    assert chi_square_ok(counts, probs)


@pytest.mark.parametrize("top_k,top_p,min_p", [(4, 1.0, 0.0), (-1, 0.3, 0.0), (-1, 1.0, 0.5), (50, 0.9, 0.05)])
def test_filtered_tokens_are_never_drawn(top_k, top_p, min_p):
    torch.manual_seed(1)
    logits = torch.randn(1, 200) * 3
    ids = sample(logits.expand(2000, -1), **params(2000, 1.0, top_k, top_p, min_p, seed=5))
    probs = allowed_probs(logits[0], 1.0, top_k, top_p, min_p)
    assert (probs[ids] > 0).all()


def test_a_draw_does_not_depend_on_the_batch():
    torch.manual_seed(2)
    logits = torch.randn(6, 500) * 2
    p = params(
        6,
        temperature=[1.0, 0.5, 0.0, 1.2, 0.8, 1.0],
        top_k=[-1, 10, 1, 0, 40, 100],
        top_p=[1.0, 0.9, 1.0, 0.5, 1.0, 0.95],
        min_p=[0.0, 0.0, 0.0, 0.0, 0.1, 0.0],
        seed=11,
        step=4,
    )
    batched = sample(logits, **p)
    for row in range(6):
        alone = {name: value[row : row + 1] for name, value in p.items()}
        assert sample(logits[row : row + 1], **alone) == batched[row]
    reversed_p = {name: value.flip(0) for name, value in p.items()}
    assert torch.equal(sample(logits.flip(0), **reversed_p), batched.flip(0))


def test_seed_and_step_change_the_draw_and_repeat_it():
    logits = torch.zeros(1, 1000).expand(300, -1)  # uniform: the draw is the noise alone
    first = sample(logits, **params(300, seed=0, step=0))
    assert torch.equal(first, sample(logits, **params(300, seed=0, step=0)))
    assert len(set(first.tolist())) > 200
    next_step = sample(logits, **params(300, seed=0, step=1))
    assert (first != next_step).float().mean() > 0.9


def test_noise_is_uniform_and_64_bit_seeds_differ():
    u = uniform_noise(torch.tensor([0, 1 << 40, -3]), torch.tensor([0, 0, 7]), 20000)
    assert ((u > 0) & (u < 1)).all()
    assert abs(u.mean().item() - 0.5) < 0.01
    counts = torch.histc(u[0], bins=20, min=0, max=1).double()
    assert chi_square_ok(counts, torch.full((20,), 0.05, dtype=torch.float64))
    assert not torch.equal(u[0], u[1])


def test_empty_batch():
    for fn in (sample_ref, sample_triton):
        out = fn(torch.empty(0, 10), **params(0))
        assert out.shape == (0,) and out.dtype == torch.int64


@pytest.mark.parametrize("batch,vocab", [(5, 37), (3, 4100), (1, 1)])
def test_kernel_matches_twin(batch, vocab):
    torch.manual_seed(vocab)
    logits = torch.randn(batch, vocab) * 2
    if vocab > 1:
        logits[0, vocab // 2] = float("-inf")  # a masked token
    p = params(
        batch,
        temperature=torch.rand(batch) + 0.3,
        top_k=torch.randint(-1, 20, (batch,)),
        top_p=torch.rand(batch) * 0.5 + 0.5,
        min_p=torch.rand(batch) * 0.1,
        seed=3,
        step=9,
    )
    assert torch.equal(sample_triton(logits, **p), sample_ref(logits, **p))


def test_kernel_matches_twin_on_many_seeds():
    logits = torch.randn(1, 16).expand(32, -1).contiguous()
    p = params(32, temperature=0.9, top_k=[-1, 6] * 16, top_p=[0.7, 1.0] * 16, min_p=0.02, seed=1234)
    assert torch.equal(sample_triton(logits, **p), sample_ref(logits, **p))


def lowbias32(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_noise_is_the_documented_hash():
    seeds, steps = [5, -(1 << 40) - 3], [0, 123456789012]
    u = uniform_noise(torch.tensor(seeds), torch.tensor(steps), 70)
    for row, (seed, step) in enumerate(zip(seeds, steps)):
        key = lowbias32(seed & 0xFFFFFFFF)
        key = lowbias32(key ^ ((seed >> 32) & 0xFFFFFFFF))
        key = lowbias32(key ^ (step & 0xFFFFFFFF))
        for token in (0, 1, 69):
            assert u[row, token].item() == ((lowbias32(key ^ token) >> 9) * 2 + 1) / 2**24
