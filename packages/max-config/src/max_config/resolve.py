"""Resolve a `PipelineConfig` against the model's files and the devices (no weights are loaded)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .custom_architectures import load_custom_architectures
from .devices import resolve_devices
from .errors import ConfigError
from .memory import MemoryPlan, plan_memory
from .model_files import ModelFiles, resolve_model_files
from .pipeline import PipelineConfig
from .support import check_device_count

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ResolvedPipeline:
    files: ModelFiles
    devices: "list[torch.device]"
    plan: MemoryPlan
    custom_architectures: list[Any]


def resolve_pipeline(config: PipelineConfig) -> ResolvedPipeline:
    """Import custom architectures, pick devices, read the model's files and plan memory."""
    custom = load_custom_architectures(config.runtime.custom_architectures)
    devices = resolve_devices(config.model.devices)
    check_device_count(devices, config.model.devices)
    gguf_names = {g: arch.name for arch in custom for g in getattr(arch, "gguf_architectures", ())}
    files = resolve_model_files(config.model, gguf_names)
    plan = plan_memory(config, files, devices[0])
    total = config.runtime.max_batch_total_tokens
    if total is not None and total < plan.max_length:
        raise ConfigError(
            f"--max-batch-total-tokens {total} is below the max length {plan.max_length}; "
            f"raise it to at least {plan.max_length} or lower --max-length"
        )
    return ResolvedPipeline(files=files, devices=devices, plan=plan, custom_architectures=custom)
