"""What the LLM API hands back: streamed deltas and finished request outputs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StreamDelta:
    """New output of one request since the last delta; the `text` deltas concatenate to the final text."""

    text: str
    token_ids: list[int]
    finished: bool
    stop_reason: str | None = None


@dataclass
class RequestMetrics:
    """`time.perf_counter()` timestamps: arrival, first generated token, finish, and every token."""

    arrival_time: float
    first_token_time: float | None = None
    finish_time: float | None = None
    token_times: list[float] = field(default_factory=list)


@dataclass
class RequestOutput:
    prompt: str | list[int]
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    stop_reason: str | None
    # prompt_logprobs[i] = log p(prompt[i + 1] | prompt[: i + 1]); set when echo is on.
    prompt_logprobs: list[float] | None
    metrics: RequestMetrics
    # With SamplingParams.logprobs = k > 0: per generated token, {chosen id: logprob, top-k ids: logprobs},
    # from the log-softmax of the raw logits (before penalties and temperature).
    logprobs: list[dict[int, float]] | None = None
