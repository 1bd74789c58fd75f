"""Memory planning: how many KV blocks fit, the longest request and the default batch size.

    bytes_per_block = 2 (K and V) x layers x KV heads x head dim x page size x dtype bytes
    kv_budget       = total_memory x device_memory_utilization - weights - activation_reserve
    usable_blocks   = kv_budget // bytes_per_block - 1          (block 0 is the null block)
    max_length      = --max-length, else min(context length, usable_blocks x page size)
    max_batch_size  = --max-batch-size, else min(cap, --max-batch-input-tokens,
                      usable_blocks // blocks per max_length request), at least 1
                      (cap: 256 on GPU, 8 on CPU)
    num_blocks      = 1 + min(usable_blocks, max_batch_size x blocks per max_length request)

`total_memory` is the device's total memory (CPU: total RAM), not the free memory at startup.
The activation reserve is 4 bytes x (max_batch_input_tokens x (4 x hidden + 3 x intermediate)
+ batch cap x vocab) + 64 MiB.
"""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .enums import QuantizationEncoding as QE
from .errors import ConfigError

if TYPE_CHECKING:
    import torch

    from .model_files import ModelFiles
    from .pipeline import PipelineConfig

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float8_e4m3fn": 1}
BATCH_CAP = {"cpu": 8, "cuda": 256}
_FIXED_RESERVE = 64 * 2**20
GIB = 2**30


@dataclass(frozen=True)
class MemoryPlan:
    num_blocks: int  # including the null block 0
    max_length: int
    max_batch_size: int
    bytes_per_block: int
    kv_dtype: str
    page_size: int
    kv_budget_bytes: int
    weights_bytes: int
    activation_reserve_bytes: int
    total_memory_bytes: int


def kv_bytes_per_block(num_layers: int, num_kv_heads: int, head_dim: int, page_size: int, kv_dtype: str) -> int:
    return 2 * num_layers * num_kv_heads * head_dim * page_size * DTYPE_BYTES[kv_dtype]


def default_kv_dtype(encoding: QE, device_type: str) -> str:
    """float32 and float16 weights keep their dtype; block-quantized GGUF weights get float32 on the CPU;
    everything else bfloat16."""
    if encoding in (QE.float32, QE.float16):
        return encoding.value
    if encoding.is_gguf_block and device_type == "cpu":
        return "float32"
    return "bfloat16"


def weights_bytes_after_cast(files: "ModelFiles") -> int:
    """Weight bytes once loaded: float weights cast to another float width scale accordingly."""
    size = files.weights_bytes
    if files.file_encoding.is_float and files.encoding != files.file_encoding:
        size = size * DTYPE_BYTES[files.encoding.value] // DTYPE_BYTES[files.file_encoding.value]
    return size


def activation_reserve(hidden: int, intermediate: int, vocab: int, max_batch_input_tokens: int, batch_cap: int) -> int:
    return 4 * (max_batch_input_tokens * (4 * hidden + 3 * intermediate) + batch_cap * vocab) + _FIXED_RESERVE


def compute_plan(
    *,
    bytes_per_block: int,
    page_size: int,
    kv_dtype: str,
    total_memory: int,
    utilization: float,
    weights_bytes: int,
    reserve_bytes: int,
    context_length: int,
    max_length: int | None,
    max_batch_size: int | None,
    max_batch_input_tokens: int,
    batch_cap: int,
) -> MemoryPlan:
    """The plan for given sizes (see the module docstring); ConfigError when it cannot fit."""
    budget = int(total_memory * utilization) - weights_bytes - reserve_bytes
    usable = max(budget // bytes_per_block - 1, 0)
    if max_length is not None:
        if max_length > context_length:
            raise ConfigError(
                f"--max-length {max_length} is above the model's context length {context_length}; "
                f"use --max-length {context_length} or less"
            )
        needed = math.ceil(max_length / page_size)
        if needed > usable:
            fits = usable * page_size
            want = (weights_bytes + reserve_bytes + (needed + 1) * bytes_per_block) / total_memory
            advice = [f"use --max-length {fits} or less"] if fits else []
            if want <= 1.0:
                advice.append(f"raise --device-memory-utilization to {math.ceil(want * 100) / 100:.2f}")
            raise ConfigError(
                f"--max-length {max_length} needs {needed} KV blocks of {bytes_per_block} bytes but only {usable} fit "
                f"in --device-memory-utilization {utilization} of {total_memory / GIB:.1f} GiB; "
                + (" or ".join(advice) or "use a smaller model or a device with more memory")
            )
    elif usable == 0:
        raise ConfigError(
            f"--device-memory-utilization {utilization}: no room for even one KV block (weights "
            f"{weights_bytes / GIB:.2f} GiB + reserve {reserve_bytes / GIB:.2f} GiB of {total_memory / GIB:.1f} GiB); "
            "raise --device-memory-utilization or use a smaller model"
        )
    else:
        max_length = min(context_length, usable * page_size)
    per_request = math.ceil(max_length / page_size)
    if max_batch_size is None:
        max_batch_size = max(1, min(batch_cap, max_batch_input_tokens, usable // per_request))
    return MemoryPlan(
        num_blocks=1 + min(usable, max_batch_size * per_request),
        max_length=max_length,
        max_batch_size=max_batch_size,
        bytes_per_block=bytes_per_block,
        kv_dtype=kv_dtype,
        page_size=page_size,
        kv_budget_bytes=budget,
        weights_bytes=weights_bytes,
        activation_reserve_bytes=reserve_bytes,
        total_memory_bytes=total_memory,
    )


def plan_memory(
    config: "PipelineConfig", files: "ModelFiles", device: "torch.device", total_memory: int | None = None
) -> MemoryPlan:
    """The memory plan of `config` for the model `files` on `device` (its total memory by default)."""
    from .devices import device_memory_bytes

    kv_dtype = (
        config.kv_cache.kv_cache_format.value
        if config.kv_cache.kv_cache_format is not None
        else default_kv_dtype(files.encoding, device.type)
    )
    page_size = config.kv_cache.kv_cache_page_size
    batch_cap = BATCH_CAP.get(device.type, BATCH_CAP["cuda"])
    text = files.text_config
    reserve = activation_reserve(
        int(text.get("hidden_size", 0)),
        int(text.get("intermediate_size", 0)),
        int(text.get("vocab_size", 0)),
        config.runtime.max_batch_input_tokens,
        batch_cap,
    )
    return compute_plan(
        bytes_per_block=kv_bytes_per_block(files.num_layers, files.num_kv_heads, files.head_dim, page_size, kv_dtype),
        page_size=page_size,
        kv_dtype=kv_dtype,
        total_memory=device_memory_bytes(device) if total_memory is None else total_memory,
        utilization=config.kv_cache.device_memory_utilization,
        weights_bytes=weights_bytes_after_cast(files),
        reserve_bytes=reserve,
        context_length=files.context_length,
        max_length=config.model.max_length,
        max_batch_size=config.runtime.max_batch_size,
        max_batch_input_tokens=config.runtime.max_batch_input_tokens,
        batch_cap=batch_cap,
    )
