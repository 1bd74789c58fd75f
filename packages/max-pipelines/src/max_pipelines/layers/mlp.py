"""Gated feed-forward block with one fused gate/up projection."""

from __future__ import annotations

import torch
from max_kernels import gelu_tanh_and_mul, silu_and_mul
from torch import nn

from max_pipelines.layers.linear import Linear

_ACTIVATIONS = {
    "silu": silu_and_mul,
    "swish": silu_and_mul,
    "gelu_pytorch_tanh": gelu_tanh_and_mul,
    "gelu_tanh": gelu_tanh_and_mul,
}


class GatedMLP(nn.Module):
    """`down(act(gate(x)) * up(x))`, with gate and up computed by one matmul."""

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str, bias: bool = False):
        super().__init__()
        if hidden_act not in _ACTIVATIONS:
            raise ValueError(f"hidden activation {hidden_act!r} is not one of {sorted(_ACTIVATIONS)}")
        self.gate_up_proj = Linear(hidden_size, [intermediate_size, intermediate_size], bias=bias)
        self.down_proj = Linear(intermediate_size, hidden_size, bias=bias)
        self.act_and_mul = _ACTIVATIONS[hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_and_mul(self.gate_up_proj(x)))
