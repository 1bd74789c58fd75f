"""Multi-step decode (`--max-num-steps`): several decode steps per scheduling round.

A round may run its batch for up to N steps back to back, without going through the scheduler, when
every scheduled request decodes one token, no request waits to be admitted (so the scheduler would
pick the same batch again) and the KV cache holds slots for all N tokens, allocated up front. N is
capped so that no request runs past its length limits. After each step the sampled tokens are
appended and checked as usual (EOS, stop ids, stop strings): a request that finishes leaves the
batch and gets no further tokens, so the outputs equal those of one step per round.
"""

from __future__ import annotations

import torch

from max_pipelines.engine.scheduler import Scheduler, ScheduledBatch

GPU_DEFAULT_STEPS = 10


def resolve_num_steps(setting: int, device: torch.device, overlap: bool = False) -> int:
    """`--max-num-steps`: -1 (auto) is 1 on the CPU and 10 on a GPU or with the overlap scheduler
    (which pipelines a round's steps); other values as given."""
    if setting != -1:
        return setting
    return 1 if device.type == "cpu" and not overlap else GPU_DEFAULT_STEPS


def burst_length(scheduler: Scheduler, batch: ScheduledBatch, max_steps: int) -> int:
    """How many steps `batch` runs this round; reserves the KV slots for them when more than one."""
    if max_steps <= 1 or scheduler.waiting:
        return 1
    if any(n != 1 or not batch.samples(i) for i, n in enumerate(batch.num_new_tokens)):
        return 1
    room = (min(s.max_new_tokens - s.num_output_tokens, s.max_length - s.num_tokens) for s in batch.seqs)
    steps = min(max_steps, *room)
    if steps <= 1:
        return 1
    # Every request already holds a slot for this step; a failed reservation keeps the blocks it got.
    if not all(scheduler.kv.allocate_slots(seq, 1, num_lookahead=steps - 1) for seq in batch.seqs):
        return 1
    return steps


def next_decode_batch(batch: ScheduledBatch) -> ScheduledBatch:
    """The same requests, minus the finished ones, one token each (the one sampled last step)."""
    seqs = [s for s in batch.seqs if not s.is_finished]
    return ScheduledBatch(seqs=seqs, num_new_tokens=[1] * len(seqs))
