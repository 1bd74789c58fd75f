"""4-bit weights for the CPU matmul `torch.ops.aten._weight_int4pack_mm_for_cpu`.

A weight `[out, in]` is stored as 4-bit codes `q` with a scale and zero per group of 32 inputs of
each row: `w = (q - 8) * scale + zero` (scale and zero in bfloat16). GGUF's Q4 blocks map onto it
exactly up to the bfloat16 rounding of their scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GROUP = 32


@dataclass(eq=False)
class Int4Weight:
    packed: torch.Tensor  # the codes in the CPU kernel's layout
    scales_zeros: torch.Tensor  # [in / 32, out, 2] bfloat16

    @classmethod
    def pack(cls, codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> Int4Weight:
        """`codes [out, in]` in 0..15 and per-group `scale`, `zero` `[out, in / 32]`."""
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32), 1)
        scales_zeros = torch.stack([scale.T, zero.T], dim=-1).to(torch.bfloat16).contiguous()
        return cls(packed, scales_zeros)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """`x [M, in]` (any float dtype) -> `x @ W.T` `[M, out]` in bfloat16."""
        return torch.ops.aten._weight_int4pack_mm_for_cpu(
            x.to(torch.bfloat16), self.packed, GROUP, self.scales_zeros
        )
