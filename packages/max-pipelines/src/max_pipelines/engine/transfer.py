"""Host-device transfers that do not wait for the device's queued work.

`torch.tensor(values, device=gpu)` copies without `non_blocking`, which synchronizes the stream: the
host would wait for every step already queued, and the overlap scheduler could not run ahead. A copy
from pageable host memory with `non_blocking=True` is staged at once and queued behind that work.
The way back (`HostCopy`) lands in pinned memory and is waited for through its own event.
"""

from __future__ import annotations

import torch


def to_device(values, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A tensor of host `values` on `device` (the CPU: the tensor itself)."""
    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)


class HostCopy:
    """A device tensor's copy on the host, started at once (pinned, asynchronous on a GPU); `tolist`
    waits for that copy alone, not for work queued after it."""

    def __init__(self, tokens: torch.Tensor):
        self.event = None
        if tokens.device.type == "cuda":
            self.host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
            self.host.copy_(tokens, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.host = tokens

    def tolist(self) -> list[int]:
        if self.event is not None:
            self.event.synchronize()
        return self.host.tolist()
