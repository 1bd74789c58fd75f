"""Profiling settings (`--gpu-profiling`)."""

from pydantic import BaseModel, ConfigDict

from .enums import GPUProfiling
from .fields import setting


class ProfilingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    gpu_profiling: GPUProfiling = setting(GPUProfiling.off, "Whether to enable GPU profiling of the model.")
