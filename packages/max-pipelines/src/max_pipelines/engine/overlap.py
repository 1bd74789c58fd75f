"""The overlap scheduler (`--enable-overlap-scheduler`): the steps of a multi-step round pipelined.

Step k+1 is queued before the host has seen step k's tokens: its inputs are those tokens, still on
the device, and its positions, slots and sequence lengths are known ahead (the round reserved the KV
slots). While the device runs step k+1, the host appends step k's tokens, checks stops and streams
text. A request that step k finishes has already been queued for step k+1; that token is computed
and dropped, and the request leaves the batch from step k+2. The outputs equal those of one step at
a time. Requests that need their tokens on the host before the next draw (penalties, logprobs, a
`min_new_tokens` mask still in force) run the round one step at a time instead.
"""

from __future__ import annotations

from collections.abc import Callable

from max_pipelines.engine.model_runner import DecodeLaunch, ModelRunner
from max_pipelines.engine.sampler import needs_penalties
from max_pipelines.engine.scheduler import ScheduledBatch
from max_pipelines.engine.sequence import Sequence
from max_pipelines.engine.transfer import to_device

Apply = Callable[[ScheduledBatch, dict[Sequence, int]], None]


def can_overlap(batch: ScheduledBatch) -> bool:
    """Whether every request of a decode round can draw its next token before the host sees the last."""
    return all(
        not needs_penalties(s) and s.logprobs is None and not s.blocked_token_ids for s in batch.seqs
    )


def run_overlapped(runner: ModelRunner, batch: ScheduledBatch, steps: int, apply: Apply) -> None:
    """Run `steps` decode steps of `batch` with one step in flight; `apply` takes each step's tokens."""
    inflight = runner.launch_decode(batch.seqs, None, lag=0)
    for _ in range(steps - 1):
        live = [i for i, s in enumerate(inflight.seqs) if not s.is_finished]
        if not live:
            break
        ids = inflight.tokens
        if len(live) < len(inflight.seqs):
            ids = ids[to_device(live, ids.device)]
        queued = runner.launch_decode([inflight.seqs[i] for i in live], ids, lag=1)
        _apply_launch(inflight, apply)
        inflight = queued
    _apply_launch(inflight, apply)


def _apply_launch(launch: DecodeLaunch, apply: Apply) -> None:
    """Hand a finished step's tokens to the host, dropping those of requests that ended meanwhile."""
    kept = [(s, t) for s, t in zip(launch.seqs, launch.host.tolist()) if not s.is_finished]
    apply(ScheduledBatch(seqs=[s for s, _ in kept], num_new_tokens=[1] * len(kept)), dict(kept))
