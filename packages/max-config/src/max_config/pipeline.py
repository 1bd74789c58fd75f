"""`PipelineConfig`: the whole configuration tree, and the routing of flat settings to its groups."""

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .diffusion_cache import DiffusionCacheConfig
from .errors import ConfigError
from .fields import setting
from .kv_cache import KVCacheConfig
from .lora import LoRAConfig
from .model import DraftModelConfig, ModelConfig
from .profiling import ProfilingConfig
from .runtime import RuntimeConfig
from .sampling import SamplingConfig
from .speculative import SpeculativeConfig
from .validation import config_error

DRAFT_PREFIX = "draft_"

# Group name -> config class, in the order they are listed and printed.
GROUPS: dict[str, type[BaseModel]] = {
    "model": ModelConfig,
    "kv_cache": KVCacheConfig,
    "runtime": RuntimeConfig,
    "sampling": SamplingConfig,
    "speculative": SpeculativeConfig,
    "lora": LoRAConfig,
    "profiling": ProfilingConfig,
    "diffusion_cache": DiffusionCacheConfig,
}


class PipelineConfig(BaseModel):
    """Every setting of a pipeline. Field names are the flag names with underscores; `draft_*` flags
    fill `draft` (None when no draft flag is set)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: ModelConfig = ModelConfig()
    draft: DraftModelConfig | None = None
    kv_cache: KVCacheConfig = KVCacheConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    sampling: SamplingConfig = SamplingConfig()
    speculative: SpeculativeConfig = SpeculativeConfig()
    lora: LoRAConfig = LoRAConfig()
    profiling: ProfilingConfig = ProfilingConfig()
    diffusion_cache: DiffusionCacheConfig = DiffusionCacheConfig()

    config_file: str | None = setting(
        None, "A YAML or JSON file of settings (flat flag names, or nested by group: model, kv_cache, ...)."
    )
    section_name: str | None = setting(None, "The section of --config-file to read.")
    model_override: list[str] = setting(
        help="Per-component overrides in the format component.field=value, where component is main or "
        "draft; the value is parsed as JSON when possible. Applied last. Repeatable. Example: "
        "main.quantization_encoding=bfloat16.",
        default_factory=list,
    )
    models: dict[str, Any] = setting(
        help="The model manifest containing all model configs keyed by role (main, draft), as inline JSON or "
        "a YAML/JSON file.",
        default_factory=dict,
        parse="mapping",
    )
    defer_resolve: bool = setting(
        False,
        "Whether to defer resolving the pipeline config (reading the model's files and planning memory) to "
        "the engine.",
    )

    TOP_LEVEL: ClassVar[tuple[str, ...]] = ("config_file", "section_name", "model_override", "models", "defer_resolve")

    @classmethod
    def route(cls, key: str) -> tuple[str, str]:
        """(group, field) of a flat key; group is "" for top-level fields. Unknown keys raise ConfigError."""
        if key in cls.TOP_LEVEL:
            return "", key
        for group, group_cls in GROUPS.items():
            if key in group_cls.model_fields:
                return group, key
        if key.startswith(DRAFT_PREFIX) and key[len(DRAFT_PREFIX):] in DraftModelConfig.model_fields:
            return "draft", key[len(DRAFT_PREFIX):]
        raise ConfigError(f"unknown setting '{key}'", key=key)

    @classmethod
    def from_flat(cls, **kwargs: Any) -> "PipelineConfig":
        """Build the tree from flat settings (`kv_cache_page_size=64`, `draft_model_path=...`)."""
        top: dict[str, Any] = {}
        grouped: dict[str, dict[str, Any]] = {}
        for key, value in kwargs.items():
            group, name = cls.route(key)
            if group:
                grouped.setdefault(group, {})[name] = value
            else:
                top[name] = value
        parts: dict[str, Any] = {}
        for group, values in grouped.items():
            group_cls = DraftModelConfig if group == "draft" else GROUPS[group]
            try:
                parts[group] = group_cls(**values)
            except ValidationError as exc:
                raise config_error(exc, DRAFT_PREFIX if group == "draft" else "") from None
        try:
            return cls(**top, **parts)
        except ValidationError as exc:
            raise config_error(exc) from None
