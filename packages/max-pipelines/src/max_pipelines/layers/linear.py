"""Linear projections holding either a float weight or packed GGUF blocks."""

from __future__ import annotations

import torch
from max_kernels import PendingNorm, linear
from max_kernels.gguf import QuantizedWeight, quantized_linear
from torch import nn


class Linear(nn.Module):
    """`y = x @ W.T + b`, where `W` is a float `weight` or packed `qweights`.

    Fused projections (QKV, gate/up) are one Linear whose output is the concatenation of
    `output_sizes`. Packed parts of one quantization type are joined into one QuantizedWeight;
    parts of different types (as in Q4_K_M files) stay separate and their outputs are joined.
    """

    def __init__(self, in_features: int, output_sizes: list[int] | int, bias: bool = False):
        super().__init__()
        self.output_sizes = [output_sizes] if isinstance(output_sizes, int) else list(output_sizes)
        self.in_features = in_features
        self.out_features = sum(self.output_sizes)
        self.weight: nn.Parameter | None = nn.Parameter(
            torch.empty(self.out_features, in_features), requires_grad=False
        )
        self.bias = nn.Parameter(torch.empty(self.out_features), requires_grad=False) if bias else None
        self.qweights: tuple[QuantizedWeight, ...] = ()

    def set_quantized(self, parts: tuple[QuantizedWeight, ...]) -> None:
        """Hold packed weights instead of a float one."""
        if sum(p.shape[0] for p in parts) != self.out_features:
            raise ValueError(f"packed weight rows {[p.shape for p in parts]} != {self.out_features}")
        self.weight = None
        self.qweights = parts

    def forward(self, x: torch.Tensor | PendingNorm) -> torch.Tensor:
        """A PendingNorm input (see decoder.py) is normalized by the batch-1 kernel as it reads it,
        or first by its own kernel where that kernel does not run."""
        if not self.qweights:
            return linear(x, self.weight, self.bias)
        if isinstance(x, PendingNorm):
            x = x.apply()
        if len(self.qweights) == 1:
            return quantized_linear(x, self.qweights[0], self.bias)
        y = torch.cat([quantized_linear(x, q) for q in self.qweights], dim=-1)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        kind = ",".join(str(q.qtype) for q in self.qweights) or "float"
        return f"in={self.in_features}, out={self.output_sizes}, bias={self.bias is not None}, {kind}"
