"""Per-step sampling policy: turns a batch's logits and its requests' parameters into token ids."""

from __future__ import annotations

import torch

from max_kernels import sampling
from max_pipelines.engine.logprobs import PendingLogprobs
from max_pipelines.engine.sequence import Sequence
from max_pipelines.engine.transfer import to_device


def needs_penalties(seq: Sequence) -> bool:
    p = seq.params
    return p.frequency_penalty != 0.0 or p.presence_penalty != 0.0 or p.repetition_penalty != 1.0


class Sampler:
    """Samples one token per row of `logits[B, V]`, row i belonging to `seqs[i]`.

    Order: 1. penalties (frequency and presence over generated tokens, repetition over prompt and
    generated), for the rows that set any; 2. the `min_new_tokens` mask: EOS and stop ids get -inf
    while too few tokens were generated; 3. `max_kernels.sampling.sample` with temperature (0 is
    greedy), top-k, top-p, min-p and a counter-based draw keyed by (seed, number of generated tokens),
    so a request's tokens do not depend on the rest of the batch. An all-greedy batch is an argmax.
    Requests with `logprobs > 0` get the log-softmax of the logits as they come in (see `logprobs`),
    appended by `record`.
    """

    def __init__(self, vocab_size: int, device: torch.device):
        self.vocab_size = vocab_size
        self.device = device
        self._pending: PendingLogprobs | None = None

    def __call__(self, logits: torch.Tensor, seqs: list[Sequence], offset: int = 0) -> torch.Tensor:
        """`offset`: tokens already sampled for these requests but not yet appended on the host."""
        self._pending = PendingLogprobs.of(logits, seqs)
        logits = self._apply_penalties(logits, seqs)
        logits = self._mask_min_tokens(logits, seqs)
        params = [s.params for s in seqs]
        if all(p.temperature == 0.0 for p in params):
            return logits.argmax(-1)
        dev = self.device
        return sampling.sample(
            logits,
            to_device([p.temperature for p in params], dev, torch.float32),
            to_device([p.top_k for p in params], dev, torch.int32),
            to_device([p.top_p for p in params], dev, torch.float32),
            to_device([p.min_p for p in params], dev, torch.float32),
            to_device([s.seed for s in seqs], dev, torch.int64),
            to_device([s.num_output_tokens + offset for s in seqs], dev, torch.int64),
        )

    def record(self, seqs: list[Sequence], token_ids: list[int]) -> None:
        """Count each sampled token for the requests that use penalties (device-side, no sync) and
        append the logprobs of the requests that ask for them."""
        for seq, token in zip(seqs, token_ids):
            if seq.output_counts is not None:
                seq.output_counts[token] += 1
        if self._pending is not None:
            self._pending.record(seqs, token_ids)
            self._pending = None

    def _apply_penalties(self, logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
        rows = [i for i, s in enumerate(seqs) if needs_penalties(s)]
        if not rows:
            return logits
        penalized = [seqs[i] for i in rows]
        for seq in penalized:
            self._init_penalty_state(seq, logits.shape[1])
        dev = self.device
        index = to_device(rows, dev)
        out = sampling.apply_penalties(
            logits[index].clone(),
            torch.stack([s.output_counts for s in penalized]),
            torch.stack([s.prompt_mask for s in penalized]),
            to_device([s.params.frequency_penalty for s in penalized], dev, torch.float32),
            to_device([s.params.presence_penalty for s in penalized], dev, torch.float32),
            to_device([s.params.repetition_penalty for s in penalized], dev, torch.float32),
        )
        logits = logits.clone()
        logits[index] = out
        return logits

    def _init_penalty_state(self, seq: Sequence, vocab: int) -> None:
        if seq.output_counts is not None:
            return
        counts = torch.zeros(vocab, dtype=torch.int32, device=self.device)
        out = seq.output_token_ids
        if out:
            counts.index_add_(0, torch.tensor(out, device=self.device), torch.ones(len(out), dtype=torch.int32, device=self.device))
        mask = torch.zeros(vocab, dtype=torch.bool, device=self.device)
        mask[torch.tensor(seq.prompt_token_ids, device=self.device)] = True
        seq.output_counts, seq.prompt_mask = counts, mask

    def _mask_min_tokens(self, logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
        rows, cols = [], []
        for i, seq in enumerate(seqs):
            blocked = [t for t in seq.blocked_token_ids if t < logits.shape[1]]
            rows += [i] * len(blocked)
            cols += blocked
        if not rows:
            return logits
        logits = logits.clone()
        logits[to_device(rows, self.device), to_device(cols, self.device)] = float("-inf")
        return logits
