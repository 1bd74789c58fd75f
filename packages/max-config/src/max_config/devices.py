"""`--devices`: cpu, gpu, gpu:0,1, gpu:all; checked against what torch sees. Never switched silently."""

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

_FORMS = "use cpu, gpu, gpu:0,1 or gpu:all"


def parse_devices(spec: str, gpu_count: int) -> list[str]:
    """Device names ("cpu", "cuda:0", ...) for a `--devices` value, given the GPUs torch sees."""
    text = spec.strip().lower()
    if text == "cpu":
        return ["cpu"]
    if text in ("gpu", "cuda"):
        ids = [0]
    elif text.startswith(("gpu:", "cuda:")):
        rest = text.split(":", 1)[1]
        if rest == "all":
            ids = list(range(gpu_count)) or [0]
        else:
            try:
                ids = [int(part) for part in rest.split(",")]
            except ValueError:
                raise ConfigError(f"--devices {spec}: GPU ids must be integers; {_FORMS}") from None
            if len(set(ids)) != len(ids) or min(ids) < 0:
                raise ConfigError(f"--devices {spec}: GPU ids must be distinct and non-negative")
    else:
        raise ConfigError(f"--devices {spec}: unknown device; {_FORMS}")
    if gpu_count == 0:
        raise ConfigError(f"--devices {spec}: no GPU is visible to torch; use --devices=cpu")
    missing = [gpu for gpu in ids if gpu >= gpu_count]
    if missing:
        raise ConfigError(
            f"--devices {spec}: GPU id {missing[0]} requested but only GPU ids "
            f"{list(range(gpu_count))} are available; use valid ids or --devices=cpu"
        )
    return [f"cuda:{gpu}" for gpu in ids]


def resolve_devices(spec: str | None) -> "list[torch.device]":
    """The devices to run on; with no spec, the first GPU, else the CPU."""
    import torch

    gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if spec is None:
        return [torch.device("cuda:0" if gpu_count else "cpu")]
    return [torch.device(name) for name in parse_devices(spec, gpu_count)]


def _cgroup_limit() -> int | None:
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def host_memory_bytes() -> int:
    """Total RAM (MemTotal of /proc/meminfo, else sysconf), bounded by a cgroup memory limit."""
    total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        total = None
    if total is None:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_limit()
    return min(total, limit) if limit else total


def device_memory_bytes(device: "torch.device") -> int:
    """Total memory of a device (not the free memory at startup)."""
    if device.type == "cpu":
        return host_memory_bytes()
    import torch

    return int(torch.cuda.get_device_properties(device.index or 0).total_memory)
