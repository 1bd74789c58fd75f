"""Per-token log-probabilities for requests with `SamplingParams.logprobs = k > 0`.

Like vLLM's default ("raw" logprobs), they come from the log-softmax of the model's logits as the
runner hands them to the sampler: before penalties, the `min_new_tokens` mask and temperature, so
they do not depend on the sampling settings. Each generated token gets a dict holding the chosen
token and the k most likely ones (k or k + 1 entries; the chosen token first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from max_pipelines.engine.sequence import Sequence


@dataclass
class PendingLogprobs:
    """Log-softmax rows of the requests that asked for logprobs, kept until their tokens are sampled."""

    rows: list[int]  # indices into the batch
    logprobs: torch.Tensor  # [len(rows), V] float32
    top_values: torch.Tensor  # [len(rows), k_max]
    top_ids: torch.Tensor  # [len(rows), k_max]

    @classmethod
    def of(cls, logits: torch.Tensor, seqs: list[Sequence]) -> PendingLogprobs | None:
        """None when no request of the batch asks for logprobs (the common case costs nothing)."""
        rows = [i for i, s in enumerate(seqs) if s.params.logprobs > 0]
        if not rows:
            return None
        k = min(max(seqs[i].params.logprobs for i in rows), logits.shape[1])
        index = torch.tensor(rows, device=logits.device)
        logprobs = torch.log_softmax(logits.index_select(0, index).float(), dim=-1)
        top = logprobs.topk(k, dim=-1)
        return cls(rows, logprobs, top.values, top.indices)

    def record(self, seqs: list[Sequence], token_ids: list[int]) -> None:
        """Append one dict per request: {chosen: logprob, top-1: ..., ..., top-k: ...}."""
        chosen_ids = [token_ids[i] for i in self.rows]
        chosen = torch.tensor(chosen_ids, device=self.logprobs.device)
        chosen_lp = self.logprobs.gather(1, chosen[:, None])[:, 0].tolist()
        top_values, top_ids = self.top_values.tolist(), self.top_ids.tolist()
        for j, i in enumerate(self.rows):
            k = seqs[i].params.logprobs
            entry = {chosen_ids[j]: chosen_lp[j]}
            entry.update(zip(top_ids[j][:k], top_values[j][:k]))
            seqs[i].logprobs.append(entry)
