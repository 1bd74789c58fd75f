"""Which settings the engine honours today.

A setting listed in `NOT_SUPPORTED_YET` may only keep its default; any other value fails with
"not supported yet: --flag" rather than being silently ignored. This is the one list to edit when a
feature lands.
"""

from collections.abc import Iterable

from .errors import ConfigError
from .flags import FlagSpec, value_of
from .generate import GenerateOptions
from .model import DraftModelConfig
from .pipeline import DRAFT_PREFIX, PipelineConfig

_DRAFT_KEYS = tuple(DRAFT_PREFIX + name for name in DraftModelConfig.model_fields)

NOT_SUPPORTED_YET: frozenset[str] = frozenset(
    (
        # Speculative decoding and its draft model.
        "speculative_method", "num_speculative_tokens", "rejection_sampling_strategy",
        "synthetic_acceptance_rate", "use_relaxed_acceptance_for_thinking", "relaxed_topk", "relaxed_delta",
        *_DRAFT_KEYS,
        # LoRA.
        "enable_lora", "lora_paths", "max_lora_rank", "max_num_loras",
        # Diffusion step caches.
        "first_block_caching", "taylorseer", "taylorseer_cache_interval", "taylorseer_warmup_steps",
        "taylorseer_max_order", "teacache", "teacache_coefficients", "teacache_rel_l1_thresh",
        # Structured output, reasoning, vision and embeddings.
        "enable_structured_output", "enable_variable_logits", "reasoning_parser", "image_url",
        "vision_config_overrides", "max_vision_cache_entries", "pool_embeddings",
        # Parallelism, disaggregation and empty batches.
        "data_parallel_degree", "ep_size", "ep_use_allreduce", "use_vendor_ccl", "pipeline_role",
        "execute_empty_batches",
        # Profiling and serving-process plumbing.
        "gpu_profiling", "zmq_endpoint_base", "decode_stall_timeout_s", "prefer_module_v3",
        # The TTS scheduler.
        "max_queue_size_tg", "min_batch_size_tg", "ce_delay_ms", "enable_prioritize_first_decode",
    )
)


def check_supported(config: PipelineConfig, options: GenerateOptions | None, flags: Iterable[FlagSpec]) -> None:
    """Raise for the first not-yet-supported setting whose value differs from its default."""
    if config.draft is not None:
        name = min(config.draft.model_fields_set or {"model_path"})
        raise ConfigError(f"not supported yet: --draft-{name.replace('_', '-')}", key=DRAFT_PREFIX + name)
    for spec in flags:
        if spec.key not in NOT_SUPPORTED_YET or spec.group == "draft" or (spec.group == "generate" and options is None):
            continue
        if value_of(spec, config, options) != spec.default:
            raise ConfigError(f"not supported yet: {spec.name}", key=spec.key)


def check_device_count(devices: list, spec: str | None) -> None:
    """One device per model for now: a multi-GPU --devices fails instead of running on the first only."""
    if len(devices) > 1:
        raise ConfigError(f"not supported yet: --devices {spec} (more than one device); pick one, e.g. --devices=gpu:0")
