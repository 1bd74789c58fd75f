"""--devices parsing against a given GPU count, and total-memory sources."""

import os

import pytest
import torch

from max_config import ConfigError, resolve_devices
from max_config.devices import device_memory_bytes, host_memory_bytes, parse_devices


@pytest.mark.parametrize(
    ("spec", "gpus", "expected"),
    [
        ("cpu", 0, ["cpu"]),
        ("CPU", 2, ["cpu"]),
        ("gpu", 1, ["cuda:0"]),
        ("gpu:1", 2, ["cuda:1"]),
        ("gpu:0,1", 2, ["cuda:0", "cuda:1"]),
        ("gpu:all", 3, ["cuda:0", "cuda:1", "cuda:2"]),
    ],
)
def test_valid_specs(spec, gpus, expected):
    assert parse_devices(spec, gpus) == expected


@pytest.mark.parametrize(
    ("spec", "gpus", "message"),
    [
        ("gpu", 0, "--devices gpu: no GPU is visible to torch; use --devices=cpu"),
        ("gpu:all", 0, "no GPU is visible"),
        ("gpu:2", 2, "GPU id 2 requested but only GPU ids \\[0, 1\\] are available"),
        ("gpu:a", 2, "GPU ids must be integers"),
        ("gpu:0,0", 2, "distinct"),
        ("tpu", 2, "unknown device"),
    ],
)
def test_invalid_specs(spec, gpus, message):
    with pytest.raises(ConfigError, match=message):
        parse_devices(spec, gpus)


def test_resolve_uses_what_torch_sees():
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert resolve_devices("cpu") == [torch.device("cpu")]
    assert resolve_devices(None) == [torch.device("cuda:0" if gpus else "cpu")]
    if gpus == 0:
        with pytest.raises(ConfigError, match="use --devices=cpu"):
            resolve_devices("gpu")


def test_host_memory_is_total_ram():
    total = host_memory_bytes()
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < total <= physical
    assert device_memory_bytes(torch.device("cpu")) == total
