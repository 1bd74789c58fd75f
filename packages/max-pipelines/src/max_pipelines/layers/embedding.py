"""Token embedding and the output (LM) head.

Embedding tables stored quantized in a GGUF file are dequantized once at load into the
model's dtype: the row gather then stays one plain indexing op. A tied LM head shares that
float table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from max_pipelines.layers.linear import Linear


class VocabEmbedding(nn.Module):
    """`weight[input_ids] * scale` (Gemma scales by sqrt(hidden_size))."""

    def __init__(self, vocab_size: int, hidden_size: int, scale: float | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size), requires_grad=False)
        self.scale = scale
        self.blocks: tuple | None = None  # (GGML type, uint8 blocks) the table was dequantized from

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = F.embedding(input_ids, self.weight)
        return x if self.scale is None else x * self.scale


class LMHead(Linear):
    """Projects final hidden states to float32 logits, with Gemma's optional tanh soft cap."""

    def __init__(self, hidden_size: int, vocab_size: int, softcap: float | None = None):
        super().__init__(hidden_size, vocab_size)
        self.softcap = softcap
        self.exact_weight: nn.Parameter | None = None
        self.exact_top = 16

    def tie(self, embedding: VocabEmbedding) -> None:
        """Share the embedding table (tied word embeddings)."""
        self.weight = embedding.weight
        self.qweights = ()

    def refine(self, logits: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Recompute the `exact_top` largest of each row of approximate `logits [B, V]` from the float table,
        in place; a head holding only packed blocks has no other table and returns `logits` as they are."""
        table = self.exact_weight if self.exact_weight is not None else self.weight
        if table is None:
            return logits
        index = logits.topk(self.exact_top, dim=-1).indices  # [B, k]
        rows = table[index]  # [B, k, H]
        return logits.scatter_(-1, index, torch.einsum("bh,bkh->bk", hidden.float(), rows.float()))

    def use_low_precision(self, dtype: torch.dtype, exact_top: int = 16) -> None:
        """Matmul through a `dtype` copy of the table (several times faster on the CPU), then redo
        the `exact_top` largest logits of each row with the full-precision table, so that the
        argmax and the likeliest tokens are as exact as before (the rest within ~1e-2)."""
        self.exact_weight = self.weight
        self.exact_top = exact_top
        self.weight = nn.Parameter(self.weight.detach().to(dtype), requires_grad=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.exact_weight is not None and not self.qweights:
            logits = self.refine(super().forward(hidden.to(self.weight.dtype)).float(), hidden)
        else:
            logits = super().forward(hidden).float()
        return self.cap(logits)

    def cap(self, logits: torch.Tensor) -> torch.Tensor:
        """Gemma's soft cap `c * tanh(logits / c)`, when the model has one."""
        return logits if self.softcap is None else torch.tanh(logits / self.softcap) * self.softcap
