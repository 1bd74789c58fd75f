"""Per-request output bookkeeping: detokenized text, pending stream deltas and timing metrics."""

from __future__ import annotations

from max_pipelines.engine.outputs import RequestMetrics, RequestOutput, StreamDelta
from max_pipelines.engine.sequence import Sequence
from max_pipelines.tokenization.detokenizer import IncrementalDetokenizer


class RequestState:
    """Output of one request. With `detokenize=False` the text stays empty, but a request with stop
    strings is still detokenized internally so that they end it."""

    def __init__(self, seq: Sequence, prompt: str | list[int], tokenizer):
        self.seq = seq
        self.prompt = prompt
        self.show_text = seq.params.detokenize
        needed = self.show_text or bool(seq.params.stop)
        self.detokenizer = IncrementalDetokenizer(tokenizer, seq.prompt_token_ids, seq.params.stop) if needed else None
        self.metrics = RequestMetrics(arrival_time=seq.arrival_time)
        self.text = ""
        self.pending: list[StreamDelta] = []

    @property
    def stopped_by_string(self) -> bool:
        return self.detokenizer is not None and self.detokenizer.stopped

    def on_token(self, token_id: int, now: float) -> None:
        if self.metrics.first_token_time is None:
            self.metrics.first_token_time = now
        self.metrics.token_times.append(now)
        text = self.detokenizer.add_token(token_id) if self.detokenizer else ""
        text = text if self.show_text else ""
        self.text += text
        self.pending.append(StreamDelta(text=text, token_ids=[token_id], finished=False))

    def on_finish(self, now: float) -> None:
        self.metrics.finish_time = now
        tail = self.detokenizer.finish() if self.detokenizer and self.show_text else ""
        self.text += tail
        if self.pending:
            last = self.pending[-1]
            last.text += tail
        else:
            self.pending.append(StreamDelta(text=tail, token_ids=[], finished=True))
        self.pending[-1].finished = True
        self.pending[-1].stop_reason = self.seq.stop_reason

    def take_deltas(self) -> list[StreamDelta]:
        out, self.pending = self.pending, []
        return out

    def output(self) -> RequestOutput:
        return RequestOutput(
            prompt=self.prompt,
            prompt_token_ids=list(self.seq.prompt_token_ids),
            token_ids=self.seq.output_token_ids,
            text=self.text,
            stop_reason=self.seq.stop_reason,
            prompt_logprobs=self.seq.prompt_logprobs,
            metrics=self.metrics,
            logprobs=None if self.seq.logprobs is None else list(self.seq.logprobs),
        )
