"""Request state as the scheduler, the KV cache manager and the model runner see it."""

from __future__ import annotations

import enum
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from max_config import SamplingParams

_ids = itertools.count()


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    """One request: its tokens so far and how many of them are already in the KV cache.

    `all_token_ids` is the prompt followed by the generated tokens. The step that computes the last
    uncomputed token samples the next one. After preemption `num_computed_tokens` is 0 again and
    the prompt plus the tokens generated so far are recomputed.
    """

    prompt_token_ids: list[int]
    params: SamplingParams
    max_new_tokens: int
    max_length: int
    eos_token_ids: frozenset[int] = frozenset()
    extra_keys: tuple = ()
    echo: bool = False
    request_id: str = field(default_factory=lambda: f"req-{next(_ids)}")
    arrival_time: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        if not self.prompt_token_ids:
            raise ValueError("a prompt needs at least one token")
        self.all_token_ids: list[int] = list(self.prompt_token_ids)
        self.num_prompt_tokens = len(self.prompt_token_ids)
        self.num_computed_tokens = 0
        self.status = SequenceStatus.WAITING
        self.stop_reason: str | None = None
        self.seed = self.params.seed if self.params.seed is not None else secrets.randbits(31)
        self.stop_token_ids = frozenset(self.params.stop_token_ids)
        self.num_preemptions = 0
        # Filled by the sampler when penalties are on: per-token counts of generated tokens, prompt mask.
        self.output_counts: torch.Tensor | None = None
        self.prompt_mask: torch.Tensor | None = None
        self.prompt_logprobs: list[float] | None = [] if self.echo or self.params.echo else None
        # Filled by the sampler when `params.logprobs > 0`: one {token id: logprob} dict per generated token.
        self.logprobs: list[dict[int, float]] | None = [] if self.params.logprobs > 0 else None

    @property
    def num_tokens(self) -> int:
        return len(self.all_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.all_token_ids) - self.num_prompt_tokens

    @property
    def output_token_ids(self) -> list[int]:
        return self.all_token_ids[self.num_prompt_tokens :]

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    @property
    def blocked_token_ids(self) -> list[int]:
        """Tokens masked out while fewer than `min_new_tokens` were generated."""
        if self.num_output_tokens >= self.params.min_new_tokens:
            return []
        stops = set(self.stop_token_ids)
        if not self.params.ignore_eos:
            stops |= self.eos_token_ids
        return sorted(stops)

    def append_token(self, token_id: int) -> None:
        """Add a sampled token and set `stop_reason` when it ends the request."""
        self.all_token_ids.append(token_id)
        n = self.num_output_tokens
        if n > self.params.min_new_tokens:
            if token_id in self.stop_token_ids:
                self.stop_reason = "stop_token"
            elif not self.params.ignore_eos and token_id in self.eos_token_ids:
                self.stop_reason = "eos"
        if self.stop_reason is None:
            if n >= self.max_new_tokens:
                self.stop_reason = "max_new_tokens"
            elif self.num_tokens >= self.max_length:
                self.stop_reason = "max_length"
