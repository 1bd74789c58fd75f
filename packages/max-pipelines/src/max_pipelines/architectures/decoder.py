"""What the decoders here share: the residual stream through the layers and the causal-LM shell.

Each layer maps `(positions, hidden, residual, ctx) -> (hidden, residual)` and leaves its last
residual add to the next norm, which fuses it; the final norm takes the last one. At batch 1, where
the matrix-vector kernel runs, an output projection adds its result to the stream itself
(`add_to_residual`: `hidden` is then None and `residual` a `SummedResidual`), and the next norm is
left to the product that reads it (a `PendingNorm`): no norm kernel runs between the layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from max_kernels import PendingNorm, linear_add
from torch import nn

from max_pipelines.forward_context import ForwardContext
from max_pipelines.layers.linear import Linear


@dataclass(frozen=True)
class SummedResidual:
    """The residual stream after a product added its output to it (the next norm has nothing to add)."""

    x: torch.Tensor


def add_to_residual(
    proj: Linear, x: torch.Tensor, residual: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | SummedResidual]:
    """`(proj(x), residual)` for the next norm to add, or `(None, SummedResidual)` where the batch-1
    kernel adds `proj(x)` to `residual` itself."""
    if proj.weight is not None:
        fused = linear_add(x, proj.weight, proj.bias, residual)
        if fused is not None:
            return None, SummedResidual(fused)
    return proj(x), residual


def residual_norm(
    norm: nn.Module, hidden: torch.Tensor | None, residual: torch.Tensor | SummedResidual | None
) -> tuple[torch.Tensor | PendingNorm, torch.Tensor]:
    """A layer's norm: `(norm(hidden + residual), hidden + residual)`; the first layer starts the
    stream. After `add_to_residual` summed it already, the norm is a PendingNorm for the next product."""
    if isinstance(residual, SummedResidual):
        weight = norm.weight if norm.kernel_weight is None else norm.kernel_weight
        return PendingNorm(residual.x, weight, norm.eps), residual.x
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
        hidden, _ = residual_norm(self.norm, hidden, residual)
        return hidden.apply() if isinstance(hidden, PendingNorm) else hidden


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
