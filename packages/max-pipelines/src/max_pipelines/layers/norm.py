"""RMSNorm, optionally fused with the residual add."""

from __future__ import annotations

import torch
from max_kernels import rms_norm
from torch import nn


class RMSNorm(nn.Module):
    """`x / rms(x) * weight`; with `residual`, normalizes `x + residual` and returns the sum too.

    `weight` is float32 (the loader keeps norms at full precision); `kernel_weight` is the same values
    in bfloat16 where that format holds them exactly (checkpoints stored in bfloat16): what a batch-1
    product reads when it applies this norm as a `PendingNorm`, half the bytes, once per program.
    """

    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden_size), requires_grad=False)
        self.eps = eps
        self.kernel_weight: torch.Tensor | None = None

    def init_buffers(self, device: torch.device) -> None:
        half = self.weight.to(torch.bfloat16)
        self.kernel_weight = half if torch.equal(half.float(), self.weight.float()) else self.weight

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return rms_norm(x, self.weight, self.eps, residual)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class GemmaRMSNorm(RMSNorm):
    """Gemma's `x / rms(x) * (1 + w)`: the weight loader folds the `1 +` into `weight`."""
