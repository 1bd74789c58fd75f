"""Continuous batching over a paged KV cache."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from max_pipelines.engine.sequence import Sequence, SequenceStatus


@dataclass(frozen=True)
class SchedulerConfig:
    max_batch_size: int = 32
    max_batch_input_tokens: int = 8192
    max_batch_total_tokens: int | None = None
    enable_chunked_prefill: bool = True
    enable_in_flight_batching: bool = False
    page_size: int = 16

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if self.max_batch_input_tokens < 1:
            raise ValueError("max_batch_input_tokens must be at least 1")


@dataclass
class ScheduledBatch:
    """The work of one step: `num_new_tokens[i]` tokens of `seqs[i]`, starting at its computed count."""

    seqs: list[Sequence] = field(default_factory=list)
    num_new_tokens: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seqs)

    @property
    def num_tokens(self) -> int:
        return sum(self.num_new_tokens)

    def samples(self, i: int) -> bool:
        """Whether request `i` reaches its last token this step, so the step samples its next one."""
        return self.seqs[i].num_computed_tokens + self.num_new_tokens[i] == self.seqs[i].num_tokens


@dataclass
class SchedulerStats:
    num_steps: int = 0
    num_preemptions: int = 0
    num_prefix_cached_tokens: int = 0


class Scheduler:
    """Hands out one token budget per step; there are no prefill and decode phases.

    Every request has `num_tokens` (prompt plus generated) and `num_computed_tokens` (in the KV cache);
    a step gives each scheduled request up to the remaining budget of `max_batch_input_tokens` so that
    the second catches up with the first. A prompt is a request far behind (split over several steps
    when chunked prefill is on), a decode is one token behind, a prefix-cache hit or a preempted request
    simply starts further ahead or behind. A request samples when it catches up.

    Without chunked prefill a prompt is never split: it waits for a step with room for all of it,
    and one longer than the whole budget runs alone.

    Order: with in-flight batching, running requests come first and waiting ones fill the remaining
    room of the same batch; without it, a step with prefill work to do runs prefill only, and decode
    steps run when no prompt is waiting. A waiting request is admitted only under `max_batch_size`,
    `max_batch_total_tokens` (sum of page-aligned context lengths) and the KV watermark. When the cache
    runs out for a running request, the most recently admitted running request is preempted (LIFO):
    its blocks are freed and it goes back to the front of the queue, to be recomputed later (its
    prefix may then hit the cache). No request is admitted in a step that preempted.
    """

    def __init__(self, kv_manager, config: SchedulerConfig):
        self.kv = kv_manager
        self.config = config
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.stats = SchedulerStats()

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    @property
    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> ScheduledBatch:
        batch = ScheduledBatch()
        if self.config.enable_in_flight_batching:
            if not self._schedule_running(batch, self.running):
                self._schedule_waiting(batch)
        else:
            prefilling = [s for s in self.running if s.num_tokens - s.num_computed_tokens > 1]
            if not self._schedule_running(batch, prefilling):
                self._schedule_waiting(batch)
            if not batch.seqs:
                self._schedule_running(batch, self.running)
        self.stats.num_steps += 1
        return batch

    def _budget(self, batch: ScheduledBatch) -> int:
        return self.config.max_batch_input_tokens - batch.num_tokens

    def _schedule_running(self, batch: ScheduledBatch, candidates: list[Sequence]) -> bool:
        """Schedule running requests in order; returns whether any request was preempted."""
        preempted = False
        for seq in list(candidates):
            if seq.status is not SequenceStatus.RUNNING:
                continue
            if self._budget(batch) <= 0 or len(batch) == self.config.max_batch_size:
                break
            num_new = min(seq.num_tokens - seq.num_computed_tokens, self._budget(batch))
            if not self._fits_total(batch, seq, num_new):
                break
            while not self.kv.allocate_slots(seq, num_new):
                victim = self.running[-1]
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    break
            if seq.status is SequenceStatus.RUNNING:
                batch.seqs.append(seq)
                batch.num_new_tokens.append(num_new)
        return preempted

    def _schedule_waiting(self, batch: ScheduledBatch) -> None:
        while self.waiting and self._budget(batch) > 0:
            if len(self.running) >= self.config.max_batch_size or len(batch) >= self.config.max_batch_size:
                break
            seq = self.waiting[0]
            if seq.num_computed_tokens == 0 and seq.prompt_logprobs is None:
                cached = min(self.kv.get_computed_tokens(seq), seq.num_tokens - 1)
                seq.num_computed_tokens = cached
            remaining = seq.num_tokens - seq.num_computed_tokens
            num_new = min(remaining, self._budget(batch))
            if num_new < remaining and not self.config.enable_chunked_prefill:
                if batch.seqs or remaining <= self.config.max_batch_input_tokens:
                    self._release(seq)
                    break
                num_new = remaining  # longer than the whole budget: it runs alone, unsplit
            if (
                (self.running and not self.kv.can_admit(num_new))
                or not self._fits_total(batch, seq, num_new)
                or not self.kv.allocate_slots(seq, num_new)
            ):
                self._release(seq)
                break
            self.stats.num_prefix_cached_tokens += seq.num_computed_tokens
            self.waiting.popleft()
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            batch.seqs.append(seq)
            batch.num_new_tokens.append(num_new)

    def _fits_total(self, batch: ScheduledBatch, seq: Sequence, num_new: int) -> bool:
        limit = self.config.max_batch_total_tokens
        if limit is None:
            return True
        page = self.config.page_size

        def aligned(n: int) -> int:
            return -(-n // page) * page

        used = sum(aligned(s.num_computed_tokens + n) for s, n in zip(batch.seqs, batch.num_new_tokens))
        return not batch.seqs or used + aligned(seq.num_computed_tokens + num_new) <= limit

    def _release(self, seq: Sequence) -> None:
        """Free `seq`'s blocks: it starts again from no computed tokens."""
        self.kv.free(seq)
        seq.num_computed_tokens = 0

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self._release(seq)
        seq.status = SequenceStatus.WAITING
        seq.num_preemptions += 1
        self.stats.num_preemptions += 1
        self.waiting.appendleft(seq)

    def update(self, batch: ScheduledBatch, sampled: dict[Sequence, int]) -> list[Sequence]:
        """Advance computed counts, append sampled tokens; returns the requests that finished."""
        finished = []
        for seq, num_new in zip(batch.seqs, batch.num_new_tokens):
            seq.num_computed_tokens += num_new
            token = sampled.get(seq)
            if token is None:
                continue
            seq.append_token(token)
            if seq.stop_reason is not None:
                self.finish(seq, seq.stop_reason)
                finished.append(seq)
        return finished

    def finish(self, seq: Sequence, reason: str) -> None:
        """End a request (a token stop, or a stop string found by the detokenizer) and free its blocks."""
        if seq.status is SequenceStatus.FINISHED:
            return
        if seq.status is SequenceStatus.RUNNING:
            self.running.remove(seq)
            self.kv.free(seq)
        else:
            self.waiting.remove(seq)
        seq.stop_reason = reason
        seq.status = SequenceStatus.FINISHED
