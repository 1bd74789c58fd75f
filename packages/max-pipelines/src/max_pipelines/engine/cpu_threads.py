"""How many threads each CPU step runs on."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch


@dataclass
class _Arm:
    """One way to run a small step: threads for the layers, threads for the LM head."""

    forward: int
    logits: int
    seconds: float | None = None  # moving average of the step time
    interval: int = 0  # steps until this arm is tried again while another is the best
    due: int = 0  # the step at which that happens

    def record(self, seconds: float) -> None:
        self.seconds = seconds if self.seconds is None else 0.7 * self.seconds + 0.3 * seconds


class StepThreads:
    """Large steps (prefill, batched decode) on all threads; small ones as measured fastest.

    A step of a token or two runs ~120 matmuls of 10-50 us each: whether waking the other threads
    for each pays off depends on the machine and on what else runs on it (a second busy process on
    a 2-core CPU makes a two-thread decode step 5x slower, a one-thread one hardly at all). So small
    steps run each arm (all threads; one thread but all for the LM head; one thread; with 4 or more
    threads, half of them) for `trial` steps, then the fastest. A losing arm is tried again after `first_retry` steps, twice as late
    each time it loses again (up to `max_retry`), so a change in the machine's load is noticed
    without paying much for the checks.
    """

    def __init__(self, threads: int, small_step_tokens: int = 2, trial: int = 2, first_retry: int = 32, max_retry: int = 1024):
        self.threads = threads
        self.small_step_tokens = small_step_tokens
        self.trial = trial
        self.first_retry = first_retry
        self.max_retry = max_retry
        arms = [(threads, threads), (1, threads), (1, 1)] if threads > 1 else [(1, 1)]  # the likeliest first
        if threads >= 4:  # many cores: half of them may beat all (fewer to wake and to wait for)
            arms.append((threads // 2, threads))
        self.arms = [_Arm(f, lg) for f, lg in arms]
        self._arm: _Arm | None = None
        self._queue: list[_Arm] = [a for a in self.arms for _ in range(trial)]  # arms to run next
        self._steps = 0
        self._start = 0.0
        self._fresh = False  # the first step on another arm pays for waking threads: not recorded
        self._current = threads
        torch.set_num_threads(threads)

    @classmethod
    def for_this_process(cls) -> StepThreads:
        """One thread per core this process may run on, unless OMP_NUM_THREADS says otherwise."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return cls(int(os.environ.get("OMP_NUM_THREADS") or cores))

    def enter(self, num_tokens: int) -> None:
        """Set the threads for the layers of a step of `num_tokens` tokens."""
        if num_tokens > self.small_step_tokens:
            self._arm = None
            self._set(self.threads)
            return
        arm = self._next_arm()
        self._fresh = arm is not self._arm
        self._arm = arm
        self._set(arm.forward)
        self._start = time.perf_counter()

    def enter_logits(self) -> None:
        """Set the threads for the LM head (the whole vocabulary table: often worth every thread)."""
        self._set(self.threads if self._arm is None else self._arm.logits)

    def leave(self) -> None:
        """End of the step: record how long a small one took."""
        if self._arm is not None and not self._fresh:
            self._arm.record(time.perf_counter() - self._start)

    def _next_arm(self) -> _Arm:
        self._steps += 1
        if not self._queue:
            best = self.best()
            for arm in self.arms:
                if arm is best:
                    arm.interval = 0
                elif self._steps >= arm.due:
                    arm.interval = min(max(2 * arm.interval, self.first_retry), self.max_retry)
                    arm.due = self._steps + arm.interval
                    arm.seconds = None  # measured afresh: the machine may have changed since
                    self._queue = [arm] * self.trial
                    break
        return self._queue.pop(0) if self._queue else self.best()

    def best(self) -> _Arm:
        return min(self.arms, key=lambda a: float("inf") if a.seconds is None else a.seconds)

    def _set(self, wanted: int) -> None:
        if wanted != self._current:
            torch.set_num_threads(wanted)
            self._current = wanted
