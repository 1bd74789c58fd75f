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

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = F.embedding(input_ids, self.weight)
        return x if self.scale is None else x * self.scale


class LMHead(Linear):
    """Projects final hidden states to float32 logits, with Gemma's optional tanh soft cap."""

    def __init__(self, hidden_size: int, vocab_size: int, softcap: float | None = None):
        super().__init__(hidden_size, vocab_size)
        self.softcap = softcap

    def tie(self, embedding: VocabEmbedding) -> None:
        """Share the embedding table (tied word embeddings)."""
        self.weight = embedding.weight
        self.qweights = ()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = super().forward(hidden).float()
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits
