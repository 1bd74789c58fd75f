"""Gated feed-forward block with one fused gate/up projection."""

from __future__ import annotations

import torch
from max_kernels import PendingNorm, act_and_mul, gated_linear
from torch import nn

from max_pipelines.layers.linear import Linear

_ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_tanh": "gelu_tanh"}


class GatedMLP(nn.Module):
    """`down(act(gate(x)) * up(x))`, with gate and up computed by one matmul."""

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str, bias: bool = False):
        super().__init__()
        if hidden_act not in _ACTIVATIONS:
            raise ValueError(f"hidden activation {hidden_act!r} is not one of {sorted(_ACTIVATIONS)}")
        self.gate_up_proj = Linear(hidden_size, [intermediate_size, intermediate_size], bias=bias)
        self.down_proj = Linear(intermediate_size, hidden_size, bias=bias)
        self.activation = _ACTIVATIONS[hidden_act]  # the kernels' name for it

    def forward(self, x: torch.Tensor | PendingNorm) -> torch.Tensor:
        return self.down_proj(self.activated(x))

    def activated(self, x: torch.Tensor | PendingNorm) -> torch.Tensor:
        """`act(gate(x)) * up(x)`, the down projection's input."""
        gate_up = self.gate_up_proj
        if gate_up.weight is not None:  # float weights: fused with the activation at batch 1
            return gated_linear(x, gate_up.weight, gate_up.bias, self.activation)
        return act_and_mul(gate_up(x), self.activation)
