"""`--print-config`: the resolved configuration as YAML, each value followed by `# <source>`."""

import json
from typing import Any

from .flags import FlagSpec, value_of
from .generate import GenerateOptions
from .pipeline import GROUPS, PipelineConfig
from .resolve import ResolvedPipeline
from .sampling import GENERATION_CONFIG_KEYS
from .sampling_params import SamplingParams
from .sources import DEFAULT, MEMORY_PLAN, MODEL_FILES, Settings

_SECTIONS = ("generate", "pipeline", *GROUPS, "draft")
_FILLED_BY = {
    "max_length": MEMORY_PLAN,
    "max_batch_size": MEMORY_PLAN,
    "devices": "default (resolved)",
    "model_path": "default (resolved)",
}


def _line(key: str, value: Any, source: str, indent: str = "  ") -> str:
    text = json.dumps(value.value if hasattr(value, "value") else value, ensure_ascii=False, default=str)
    return f"{indent}{key}: {text}  # {source}"


def _resolved_values(resolved: ResolvedPipeline) -> dict[str, Any]:
    files, plan = resolved.files, resolved.plan
    return {
        "model_path": str(files.weight_files[0] if files.weight_format == "gguf" else files.root),
        "quantization_encoding": files.encoding.value,
        "max_length": plan.max_length,
        "max_batch_size": plan.max_batch_size,
        "devices": ",".join(str(device) for device in resolved.devices),
    }


def _resolution_lines(resolved: ResolvedPipeline) -> list[str]:
    files, plan = resolved.files, resolved.plan
    facts = {
        "architecture": files.architecture,
        "weight_format": files.weight_format,
        "weight_files": [str(path) for path in files.weight_files],
        "encoding": files.encoding.value,
        "file_encoding": files.file_encoding.value,
        "context_length": files.context_length,
        "num_layers": files.num_layers,
        "num_attention_heads": files.num_attention_heads,
        "num_kv_heads": files.num_kv_heads,
        "head_dim": files.head_dim,
        "chat_template_chars": len(files.chat_template) if files.chat_template else 0,
    }
    lines = ["resolved:"] + [_line(key, value, MODEL_FILES) for key, value in facts.items()]
    for key in ("kv_dtype", "page_size", "bytes_per_block", "num_blocks", "max_length", "max_batch_size",
                "kv_budget_bytes", "weights_bytes", "activation_reserve_bytes", "total_memory_bytes"):
        lines.append(_line(key, getattr(plan, key), MEMORY_PLAN))
    return lines


def _request_source(key: str, settings: Settings, generation_config: dict[str, Any]) -> str:
    if key in settings.sources:
        return settings.sources[key]
    from_model = key in GENERATION_CONFIG_KEYS and generation_config.get(key) is not None
    from_model = from_model or key == "temperature" and generation_config.get("do_sample") is False
    return MODEL_FILES if from_model else DEFAULT


def _request_lines(params: SamplingParams, settings: Settings, generation_config: dict[str, Any]) -> list[str]:
    lines = ["request:"]
    for key in params.__dataclass_fields__:
        value = getattr(params, key)
        source = _request_source(key, settings, generation_config)
        lines.append(_line(key, list(value) if isinstance(value, tuple) else value, source))
    return lines


def render_config(
    config: PipelineConfig,
    options: GenerateOptions,
    settings: Settings,
    flags: list[FlagSpec],
    resolved: ResolvedPipeline | None,
    params: SamplingParams,
) -> str:
    """The YAML text printed by `--print-config`."""
    filled = _resolved_values(resolved) if resolved is not None else {}
    generation_config = resolved.files.generation_config if resolved is not None else {}
    lines = ["# Resolved configuration; each value is followed by its source."]
    for section in _SECTIONS:
        specs = [spec for spec in flags if spec.group == section]
        if section == "draft" and config.draft is None:
            lines.append("draft: null  # default")
            continue
        lines.append(f"{section}:")
        for spec in specs:
            source = settings.source_of(spec.key)
            value = value_of(spec, config, options)
            if source == DEFAULT and spec.key in filled:
                value = filled[spec.key]
                source = _FILLED_BY.get(spec.key, MODEL_FILES)
            elif value is None and spec.group == "sampling" and spec.field in params.__dataclass_fields__:
                value = getattr(params, spec.field)  # what the request will use
                source = _request_source(spec.key, settings, generation_config)
            lines.append(_line(spec.field, value, source))
    if resolved is not None:
        lines += _resolution_lines(resolved)
    lines += _request_lines(params, settings, generation_config)
    return "\n".join(lines) + "\n"
