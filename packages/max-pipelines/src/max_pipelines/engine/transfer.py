"""Host values to the device without waiting for it.

`torch.tensor(values, device=gpu)` copies without `non_blocking`, which synchronizes the stream: the
host would wait for every step already queued, and the overlap scheduler could not run ahead. A copy
from pageable host memory with `non_blocking=True` is staged at once and queued behind that work.
"""

from __future__ import annotations

import torch


def to_device(values, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A tensor of host `values` on `device` (the CPU: the tensor itself)."""
    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)
