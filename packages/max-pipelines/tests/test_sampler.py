"""Sampler policy: penalties, min-new-tokens masking, seeds independent of the batch."""

import torch

from max_config import SamplingParams
from max_pipelines.engine.sampler import Sampler
from max_pipelines.engine.sequence import Sequence

V = 32


def seq(prompt=(1, 2, 3), eos=(0,), **params):
    return Sequence(list(prompt), SamplingParams(**params), max_new_tokens=50, max_length=1000, eos_token_ids=frozenset(eos))


def sample(seqs, logits):
    sampler = Sampler(V, torch.device("cpu"))
    ids = sampler(logits, seqs).tolist()
    sampler.record(seqs, ids)
    return ids


def reference_penalties(logits, prompt, output, freq, pres, rep):
    """Plain float64 formulas: repetition over prompt and output, frequency and presence over output."""
    x = logits.double().clone()
    seen = set(prompt) | set(output)
    for t in seen:
        x[t] = x[t] / rep if x[t] > 0 else x[t] * rep
    for t in set(output):
        x[t] -= freq * output.count(t) + pres
    return x


def test_penalties_follow_the_reference_formulas_and_count_generated_tokens():
    torch.manual_seed(0)
    s = seq(prompt=(4, 5, 6), temperature=0.0, frequency_penalty=0.7, presence_penalty=0.4, repetition_penalty=1.5)
    plain = seq(prompt=(4, 5, 6), temperature=0.0)
    sampler = Sampler(V, torch.device("cpu"))
    for _ in range(12):
        logits = torch.randn(2, V) * 2
        logits[:, 4] += 3  # a prompt token, favoured
        ids = sampler(logits, [s, plain]).tolist()
        sampler.record([s, plain], ids)
        expected = int(reference_penalties(logits[0], s.prompt_token_ids, s.output_token_ids, 0.7, 0.4, 1.5).argmax())
        assert ids[0] == expected
        assert ids[1] == int(logits[1].argmax())  # rows without penalties are untouched
        s.append_token(ids[0])
        plain.append_token(ids[1])
    assert s.output_counts.tolist() == [s.output_token_ids.count(t) for t in range(V)]


def test_min_new_tokens_masks_eos_and_stop_ids_until_reached():
    s = seq(eos=(0,), temperature=0.0, min_new_tokens=3, stop_token_ids=(7,))
    logits = torch.zeros(1, V)
    logits[0, 0], logits[0, 7], logits[0, 9] = 10.0, 9.0, 1.0
    got = []
    for _ in range(4):
        token = sample([s], logits)[0]
        got.append(token)
        s.append_token(token)
        if s.stop_reason:
            break
    assert got == [9, 9, 9, 0]
    assert s.stop_reason == "eos"


def test_ignore_eos_keeps_stop_ids_only():
    s = seq(eos=(0,), temperature=0.0, ignore_eos=True)
    s.append_token(0)
    assert s.stop_reason is None
    t = seq(eos=(0,), temperature=0.0, stop_token_ids=(5,))
    t.append_token(5)
    assert t.stop_reason == "stop_token"


def test_seeded_draws_do_not_depend_on_the_rest_of_the_batch():
    torch.manual_seed(1)
    steps = [torch.randn(3, V) for _ in range(10)]

    def draws(batch_rows):
        seqs = [seq(temperature=1.0, seed=1234 + r) for r in batch_rows]
        out = []
        for logits in steps:
            ids = sample(seqs, logits[batch_rows])
            for s, t in zip(seqs, ids):
                s.append_token(t)
            out.append(ids)
        return [[o[i] for o in out] for i in range(len(batch_rows))]

    alone = draws([0])[0]
    in_batch = draws([2, 0, 1])[1]
    assert alone == in_batch
    # Seeded sampling really samples: the draws are not all the argmax.
    assert alone != [int(s[0].argmax()) for s in steps]


def test_unseeded_requests_get_different_seeds():
    assert len({seq(temperature=1.0).seed for _ in range(8)}) > 1
