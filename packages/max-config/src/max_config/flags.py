"""The flag table: one `FlagSpec` per command-line flag, derived from the config models' fields."""

import types
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .generate import GENERATE_DEFAULTS, GenerateOptions
from .model import DraftModelConfig
from .pipeline import DRAFT_PREFIX, GROUPS, PipelineConfig


@dataclass(frozen=True)
class FlagSpec:
    """One flag. `key` is the flat setting name; `kind` is bool, bool_value, int, float, str, choice,
    mapping or int_list; `multiple` flags repeat and give a list."""

    key: str
    group: str
    field: str
    name: str
    aliases: tuple[str, ...]
    kind: str
    multiple: bool
    choices: tuple[str, ...] | None
    default: Any
    default_text: str
    help: str

    @property
    def env_var(self) -> str:
        return "MAX_" + self.key.upper()


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner type, is_list) of `X`, `X | None`, `list[X]`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _unwrap(args[0])
    if origin is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def _kind(inner: Any, extra: dict[str, Any]) -> tuple[str, tuple[str, ...] | None]:
    if extra.get("parse"):
        return extra["parse"], None
    if isinstance(inner, type) and issubclass(inner, Enum):
        return "choice", tuple(member.value for member in inner)
    if inner is bool:
        return ("bool_value" if extra.get("value_flag") else "bool"), None
    if inner in (int, float, str):
        return inner.__name__, None
    raise TypeError(f"no flag kind for {inner!r}")


def _default(info: FieldInfo) -> Any:
    value = info.get_default(call_default_factory=True)
    return value.value if isinstance(value, Enum) else value


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value in ([], {}):
        return "none"
    return str(value)


def spec_for(key: str, group: str, name: str, info: FieldInfo, defaults: dict[str, Any]) -> FlagSpec:
    extra = dict(info.json_schema_extra or {})
    inner, is_list = _unwrap(info.annotation)
    kind, choices = _kind(inner, extra)
    value = defaults[key] if key in defaults else _default(info)
    default_text = _show(value) if key in defaults else extra.get("default_text") or _show(value)
    multiple = is_list and kind != "int_list"
    return FlagSpec(
        key=key,
        group=group,
        field=name,
        name=extra.get("flag") or "--" + key.replace("_", "-"),
        aliases=tuple(extra.get("aliases") or ()) if key == name else (),
        kind=kind,
        multiple=multiple,
        choices=choices,
        default=value,
        default_text=default_text,
        help=info.description or "",
    )


def _model_specs(group: str, model: type[BaseModel], defaults: dict[str, Any], prefix: str = "") -> list[FlagSpec]:
    """Specs of the fields declared with `setting()` (a group field of PipelineConfig is not one)."""
    return [
        spec_for(prefix + name, group, name, info, defaults)
        for name, info in model.model_fields.items()
        if info.json_schema_extra is not None
    ]


def pipeline_flags(defaults: dict[str, Any] | None = None) -> list[FlagSpec]:
    """Flags of every `PipelineConfig` setting (what `PipelineConfig.from_flat` accepts)."""
    defaults = defaults or {}
    specs = _model_specs("pipeline", PipelineConfig, defaults)
    for group, model in GROUPS.items():
        specs += _model_specs(group, model, defaults)
    specs += _model_specs("draft", DraftModelConfig, defaults, prefix=DRAFT_PREFIX)
    return specs


def generate_flags() -> list[FlagSpec]:
    """Every flag of `max generate`: the command's own, then the pipeline's (with generate's defaults)."""
    return _model_specs("generate", GenerateOptions, {}) + pipeline_flags(GENERATE_DEFAULTS)


def value_of(spec: FlagSpec, config: PipelineConfig, options: GenerateOptions | None = None) -> Any:
    """The value `spec` has in a built config (enums as their strings); None for an absent draft."""
    if spec.group == "generate":
        holder: Any = options
    elif spec.group == "pipeline":
        holder = config
    else:
        holder = getattr(config, spec.group)
    value = None if holder is None else getattr(holder, spec.field)
    return value.value if isinstance(value, Enum) else value
