"""Scheduler with a real KVCacheManager: budgets, chunked prefill, in-flight batching, preemption."""

import torch

from max_config import SamplingParams
from max_kvcache import KVCacheManager, KVCacheSpec
from max_pipelines.engine.scheduler import Scheduler, SchedulerConfig
from max_pipelines.engine.sequence import Sequence, SequenceStatus


def make(num_blocks=64, page=4, prefix=True, **cfg):
    spec = KVCacheSpec(num_layers=1, num_kv_heads=1, head_dim=4, page_size=page, dtype=torch.float32)
    kv = KVCacheManager(spec, num_blocks, enable_prefix_caching=prefix, watermark=1.0)
    return Scheduler(kv, SchedulerConfig(page_size=page, **cfg)), kv


def seq(n, max_new=4, start=0):
    return Sequence(list(range(start, start + n)), SamplingParams(temperature=0.0), max_new_tokens=max_new, max_length=1000)


def next_token(s):
    """A deterministic stand-in for the model: the next token depends only on the request's tokens."""
    return (sum(s.all_token_ids) * 31 + len(s.all_token_ids)) % 997


def step(sched):
    batch = sched.schedule()
    sampled = {s: next_token(s) for i, s in enumerate(batch.seqs) if batch.samples(i)}
    plan = [(s, n, s.num_computed_tokens) for s, n in zip(batch.seqs, batch.num_new_tokens)]
    sched.update(batch, sampled)
    return plan, sampled


def run(sched, limit=500):
    plans = []
    while sched.has_unfinished and limit:
        plans.append(step(sched)[0])
        limit -= 1
    assert not sched.has_unfinished
    return plans


def test_token_budget_and_chunked_prefill():
    sched, _ = make(max_batch_input_tokens=8)
    a, b = seq(20), seq(10, start=100)
    sched.add(a)
    sched.add(b)
    plans = run(sched)
    assert all(sum(n for _, n, _ in p) <= 8 for p in plans)
    # a's prompt is split 8 + 8 + 4; the last chunk leaves 4 tokens of room for b's first chunk.
    assert [(s is a, n, c) for s, n, c in plans[0]] == [(True, 8, 0)]
    assert [(s is a, n, c) for s, n, c in plans[2]] == [(True, 4, 16), (False, 4, 0)]
    assert a.stop_reason == b.stop_reason == "max_new_tokens"
    assert a.num_output_tokens == b.num_output_tokens == 4


def test_without_chunked_prefill_a_prompt_waits_for_a_budget_that_holds_it():
    sched, _ = make(max_batch_input_tokens=12, enable_chunked_prefill=False)
    a, b = seq(10), seq(6, start=50)
    sched.add(a)
    sched.add(b)
    plans = run(sched)
    for p in plans:
        for s, n, c in p:
            assert (c, n) == (0, s.num_prompt_tokens) or n == 1  # never a partial prompt
    assert [(s is a, n) for s, n, _ in plans[0]] == [(True, 10)]


def test_without_chunked_prefill_a_prompt_longer_than_the_budget_runs_alone():
    sched, _ = make(max_batch_input_tokens=8, enable_chunked_prefill=False)
    a, b = seq(3), seq(20, start=50)
    sched.add(a)
    sched.add(b)
    plans = run(sched)
    assert [(s is b, n) for s, n, _ in plans[1]] == [(True, 20)]
    assert b.num_output_tokens == 4


def test_max_batch_size_bounds_running_requests():
    sched, _ = make(max_batch_size=2)
    seqs = [seq(3, start=10 * i) for i in range(5)]
    for s in seqs:
        sched.add(s)
    for p in run(sched):
        assert len(p) <= 2
    assert all(s.num_output_tokens == 4 for s in seqs)


def test_in_flight_batching_mixes_decode_and_prefill():
    for in_flight in (True, False):
        sched, _ = make(enable_in_flight_batching=in_flight)
        a = seq(5, max_new=10)
        sched.add(a)
        step(sched)  # a prefilled, first token sampled
        b = seq(7, start=40)
        sched.add(b)
        plan, _ = step(sched)
        kinds = {("a" if s is a else "b", n) for s, n, _ in plan}
        assert kinds == ({("a", 1), ("b", 7)} if in_flight else {("b", 7)})


def test_max_batch_total_tokens_counts_page_aligned_context():
    sched, _ = make(page=4, max_batch_total_tokens=16)
    a, b, c = seq(6), seq(6, start=20), seq(6, start=40)
    for s in (a, b, c):
        sched.add(s)
    plan, _ = step(sched)
    # Each prompt occupies 8 page-aligned tokens: only two fit in 16.
    assert [s for s, _, _ in plan] == [a, b]


def test_preemption_frees_the_most_recent_request_and_recompute_gives_same_tokens():
    def outputs(num_blocks):
        sched, kv = make(num_blocks=num_blocks, page=4, max_batch_input_tokens=64)
        seqs = [seq(6, max_new=12, start=100 * i) for i in range(3)]
        for s in seqs:
            sched.add(s)
        victims = []
        while sched.has_unfinished:
            before = list(sched.running)
            step(sched)
            victims += [s for s in before if s.status is SequenceStatus.WAITING]
        return [s.output_token_ids for s in seqs], sched.stats.num_preemptions, victims, seqs

    ref, n0, _, _ = outputs(64)
    got, n, victims, seqs = outputs(10)  # 9 usable blocks of 4 tokens; three requests need 5 each
    assert n0 == 0 and n > 0
    assert got == ref
    # LIFO: the last admitted request is the first victim.
    assert victims[0] is seqs[2]


def test_prefix_cache_hit_skips_computed_blocks():
    sched, kv = make(page=4)
    a = seq(10, max_new=2)
    sched.add(a)
    run(sched)
    b = seq(10, max_new=2)  # the same prompt
    sched.add(b)
    plan, _ = step(sched)
    assert plan == [(b, 2, 8)]
    assert sched.stats.num_prefix_cached_tokens == 8


def test_finish_frees_blocks_for_stop_strings():
    sched, kv = make(num_blocks=8, page=4)
    a = seq(9, max_new=50)
    sched.add(a)
    step(sched)
    assert kv.num_free_blocks < 7
    sched.finish(a, "stop_string")
    assert a.is_finished and a.stop_reason == "stop_string"
    assert kv.num_free_blocks == 7 and not sched.has_unfinished


def test_random_workloads_keep_the_invariants_and_the_reference_tokens():
    import random

    rng = random.Random(0)
    total_preemptions = 0
    for trial in range(12):
        prompts = [[rng.randrange(500) for _ in range(rng.randrange(1, 30))] for _ in range(rng.randrange(1, 7))]
        max_new = [rng.randrange(1, 12) for _ in prompts]
        cfg = dict(
            max_batch_size=rng.choice([1, 2, 8]),
            max_batch_input_tokens=rng.choice([3, 8, 64]),
            enable_chunked_prefill=rng.random() < 0.7,
            enable_in_flight_batching=rng.random() < 0.5,
        )

        def outputs(num_blocks, prefix):
            sched, kv = make(num_blocks=num_blocks, page=4, prefix=prefix, **cfg)
            seqs = [Sequence(p, SamplingParams(temperature=0.0), max_new_tokens=m, max_length=1000)
                    for p, m in zip(prompts, max_new)]
            for s in seqs:
                sched.add(s)
            for _ in range(2000):
                if not sched.has_unfinished:
                    break
                batch = sched.schedule()
                assert batch.seqs, "no progress"
                assert len(batch) <= cfg["max_batch_size"] and len(set(batch.seqs)) == len(batch)
                if len(batch) > 1:
                    assert batch.num_tokens <= cfg["max_batch_input_tokens"]
                for s, n in zip(batch.seqs, batch.num_new_tokens):
                    assert 0 < n <= s.num_tokens - s.num_computed_tokens
                sched.update(batch, {s: next_token(s) for i, s in enumerate(batch.seqs) if batch.samples(i)})
            assert not sched.has_unfinished and kv.num_free_blocks == num_blocks - 1
            return [s.output_token_ids for s in seqs], sched.stats.num_preemptions

        reference, _ = outputs(400, prefix=False)
        assert [len(r) for r in reference] == max_new
        # A cache that holds the longest request (and a bit) but not all of them at once.
        tight = max(-(-(len(p) + m) // 4) for p, m in zip(prompts, max_new)) + 2
        for prefix in (False, True):
            got, preemptions = outputs(tight, prefix)
            assert got == reference, (trial, cfg, prefix)
            total_preemptions += preemptions
    assert total_preemptions > 0  # the tight caches really forced recomputation
