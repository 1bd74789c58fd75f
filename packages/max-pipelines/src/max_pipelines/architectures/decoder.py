"""What the decoders here share: the residual stream through the layers and the causal-LM shell.

Each layer maps `(positions, hidden, residual, ctx) -> (hidden, residual)` and leaves its last
residual add to the next norm, which fuses it; the final norm takes the last one.
"""

from __future__ import annotations

import torch
from torch import nn

from max_pipelines.forward_context import ForwardContext


def residual_norm(
    norm: nn.Module, hidden: torch.Tensor, residual: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's first norm: `(norm(hidden + residual), hidden + residual)`; the first layer starts the stream."""
    if residual is None:
        return norm(hidden), hidden
    return norm(hidden, residual)


class DecoderModel(nn.Module):
    """Subclasses set `embed_tokens`, `layers` and `norm`; `forward` gives final hidden states `[T, H]`."""

    def rope_positions(self, positions: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        """The rows of the RoPE table the step's tokens read (overridden where they depend on the request)."""
        return positions

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        hidden = self.embed_tokens(input_ids)
        positions = self.rope_positions(positions, ctx)
        residual = None
        for layer in self.layers:
            hidden, residual = layer(positions, hidden, residual, ctx)
        hidden, _ = self.norm(hidden, residual)
        return hidden


class CausalLM(nn.Module):
    """Subclasses set `model` (a DecoderModel) and `lm_head`.

    `forward` gives final hidden states `[T, H]`; `compute_logits` gives float32 `[B, V]`.
    """

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return self.model(input_ids, positions, ctx)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def tie_weights(self) -> None:
        self.lm_head.tie(self.model.embed_tokens)
