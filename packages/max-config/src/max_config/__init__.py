"""max_config: typed configuration, config files and precedence, model-file resolution, devices and
memory planning for the max engine. Importing it does not import torch."""

from .custom_architectures import load_custom_architectures
from .default_model import default_model_path
from .devices import resolve_devices
from .diffusion_cache import DiffusionCacheConfig
from .enums import (
    GPUProfiling,
    KVCacheFormat,
    KVConnectorType,
    PipelineRole,
    QuantizationEncoding,
    RejectionSamplingStrategy,
    RopeType,
    SpeculativeMethod,
)
from .errors import ConfigError
from .flags import FlagSpec, generate_flags, pipeline_flags
from .generate import DEFAULT_PROMPT, GenerateOptions
from .kv_cache import KVCacheConfig
from .lora import LoRAConfig
from .memory import MemoryPlan, compute_plan, default_kv_dtype, kv_bytes_per_block, plan_memory
from .model import DraftModelConfig, ModelConfig
from .model_files import ModelFiles, resolve_model_files
from .pipeline import PipelineConfig
from .profiling import ProfilingConfig
from .resolve import ResolvedPipeline, resolve_pipeline
from .runtime import RuntimeConfig
from .sampling import SamplingConfig
from .sampling_params import SamplingParams
from .speculative import SpeculativeConfig
from .support import NOT_SUPPORTED_YET, check_supported

__all__ = [
    "ConfigError",
    "DEFAULT_PROMPT",
    "DiffusionCacheConfig",
    "DraftModelConfig",
    "FlagSpec",
    "GPUProfiling",
    "GenerateOptions",
    "KVCacheConfig",
    "KVCacheFormat",
    "KVConnectorType",
    "LoRAConfig",
    "MemoryPlan",
    "ModelConfig",
    "ModelFiles",
    "NOT_SUPPORTED_YET",
    "PipelineConfig",
    "PipelineRole",
    "ProfilingConfig",
    "QuantizationEncoding",
    "RejectionSamplingStrategy",
    "ResolvedPipeline",
    "RopeType",
    "RuntimeConfig",
    "SamplingConfig",
    "SamplingParams",
    "SpeculativeConfig",
    "SpeculativeMethod",
    "check_supported",
    "compute_plan",
    "default_kv_dtype",
    "default_model_path",
    "generate_flags",
    "kv_bytes_per_block",
    "load_custom_architectures",
    "pipeline_flags",
    "plan_memory",
    "resolve_devices",
    "resolve_model_files",
    "resolve_pipeline",
]
