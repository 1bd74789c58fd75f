"""Where each setting comes from, and the order in which sources win.

Precedence, highest first:

1. `--model-override component.field=value` (applied last, over everything);
2. flags given on the command line (and, below them, the entries of the `--models` manifest);
3. the `--config-file` (optionally one `--section-name` of it);
4. environment variables `MAX_<FLAG_NAME>` (e.g. `MAX_KV_CACHE_PAGE_SIZE=64`);
5. the model's own files (`config.json`, `generation_config.json`, GGUF metadata) for values
   the user left unset, such as `max_length` and the sampling defaults;
6. the built-in defaults.

`Settings.sources` records the winner's origin for every key, which `--print-config` prints.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .flags import FlagSpec, generate_flags
from .model import DraftModelConfig, ModelConfig
from .pipeline import DRAFT_PREFIX, GROUPS
from .values import coerce, one_line, read_mapping_file

FLAG = "flag"
DEFAULT = "default"
MODEL_FILES = "model files"
MEMORY_PLAN = "memory plan"

_ROLES = {"main": "", "model": "", "draft": DRAFT_PREFIX}
_NOT_IN_FILE = ("config_file", "section_name")


@dataclass
class Settings:
    """Flat settings that differ from the defaults, with the origin of each."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def set(self, key: str, value: Any, source: str) -> None:
        self.values[key] = value
        self.sources[key] = source

    def source_of(self, key: str) -> str:
        return self.sources.get(key, DEFAULT)


def _normalise_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise ConfigError(f"{where}: setting names must be strings, got {key!r}")
    return key.strip().lstrip("-").replace("-", "_")


def flatten_file_content(content: Any, where: str, known: Mapping[str, FlagSpec]) -> dict[str, Any]:
    """Flat settings from a config file's mapping: flat flag names, or nested under a group name."""
    if not isinstance(content, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of settings, got {type(content).__name__}")
    flat: dict[str, Any] = {}
    for raw_key, value in content.items():
        key = _normalise_key(raw_key, where)
        if (key in GROUPS or key in ("draft", "generate")) and isinstance(value, dict):
            prefix = DRAFT_PREFIX if key == "draft" else ""
            for raw_inner, inner_value in value.items():
                inner = prefix + _normalise_key(raw_inner, where)
                if inner not in known or (key not in ("draft", "generate") and known[inner].group != key):
                    raise ConfigError(f"{where}: unknown setting '{raw_inner}' in section '{key}'")
                flat[inner] = inner_value
            continue
        if key not in known:
            raise ConfigError(f"{where}: unknown setting '{raw_key}'")
        if key in _NOT_IN_FILE:
            raise ConfigError(f"{where}: '{raw_key}' cannot be set inside a config file")
        flat[key] = value
    return flat


def load_config_file(path: str, section_name: str | None, known: Mapping[str, FlagSpec]) -> dict[str, Any]:
    """Flat settings from a YAML/JSON `--config-file`, optionally one `--section-name` of it."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"--config-file: {path} does not exist or is not a file")
    content = read_mapping_file(file, "--config-file")
    if section_name is not None:
        sections = sorted(str(key) for key in content) if isinstance(content, dict) else []
        if section_name not in sections or not isinstance(content.get(section_name), dict):
            raise ConfigError(
                f"--section-name: no section '{section_name}' in {path} (sections: {', '.join(sections) or 'none'})"
            )
        content = content[section_name]
    return flatten_file_content(content, f"--config-file {path}", known)


def parse_model_override(text: str) -> tuple[str, Any]:
    """(flat key, value) of `component.field=value`; the value is parsed as JSON when possible."""
    target, sep, raw = str(text).partition("=")
    component, dot, name = target.strip().partition(".")
    if not sep or not dot or not name:
        raise ConfigError(f"--model-override {text!r}: expected component.field=value, e.g. main.max_length=2048")
    if component not in _ROLES:
        raise ConfigError(f"--model-override {text!r}: unknown component '{component}' (known: main, draft)")
    model = DraftModelConfig if component == "draft" else ModelConfig
    if name not in model.model_fields:
        raise ConfigError(f"--model-override {text!r}: {component} has no setting '{name}'")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return _ROLES[component] + name, value


def manifest_settings(manifest: dict[str, Any]) -> dict[str, Any]:
    """Flat settings from a `--models` manifest keyed by role (main, draft)."""
    flat: dict[str, Any] = {}
    for role, entries in manifest.items():
        if role not in _ROLES:
            raise ConfigError(f"--models: unknown role '{role}' (known: main, draft)")
        if not isinstance(entries, dict):
            raise ConfigError(f"--models: role '{role}' must map setting names to values")
        model = DraftModelConfig if role == "draft" else ModelConfig
        for raw_name, value in entries.items():
            name = _normalise_key(raw_name, "--models")
            if name not in model.model_fields:
                raise ConfigError(f"--models: {role} has no setting '{raw_name}'")
            flat[_ROLES[role] + name] = value
    return flat


def gather(
    cli: Mapping[str, Any], environ: Mapping[str, str] | None = None, flags: list[FlagSpec] | None = None
) -> Settings:
    """Layer environment, config file, flags, manifest and overrides (see the module docstring).

    `cli` holds only the flags the user gave on the command line.
    """
    environ = os.environ if environ is None else environ
    known = {spec.key: spec for spec in flags or generate_flags()}
    settings = Settings()
    for spec in known.values():
        if spec.env_var in environ:
            where = f"env {spec.env_var}"
            settings.set(spec.key, coerce(spec, environ[spec.env_var], where), where)
    config_file = cli.get("config_file", settings.values.get("config_file"))
    section_name = cli.get("section_name", settings.values.get("section_name"))
    if section_name is not None and config_file is None:
        raise ConfigError("--section-name needs --config-file")
    if config_file is not None:
        where = f"config file {config_file}"
        for key, value in load_config_file(config_file, section_name, known).items():
            settings.set(key, coerce(known[key], value, f"--config-file {config_file}: {key}"), where)
    for key, value in cli.items():
        if key not in known:
            raise ConfigError(f"unknown setting '{key}'")
        settings.set(key, coerce(known[key], value, known[key].name), FLAG)
    manifest = settings.values.get("models")
    if manifest:
        where = _via(settings, "models")
        for key, value in manifest_settings(manifest).items():
            if key not in cli:
                settings.set(key, coerce(known[key], value, f"--models: {key}"), where)
    if settings.values.get("model_override"):
        where = _via(settings, "model_override")
        for text in settings.values["model_override"]:
            key, value = parse_model_override(text)
            settings.set(key, coerce(known[key], value, f"--model-override {text!r}"), where)
    return settings


def _via(settings: Settings, key: str) -> str:
    """The source label of values that arrive through `--models` or `--model-override`."""
    flag = "--" + key.replace("_", "-")
    source = settings.sources[key]
    return f"flag {flag}" if source == FLAG else f"{flag} in {source}"


def describe_error(error: ConfigError, settings: Settings) -> ConfigError:
    """`error`, saying where the offending value came from when that was not a flag."""
    source = settings.sources.get(error.key or "")
    if source and source != FLAG:
        return ConfigError(f"{one_line(error)} (set by {source})", key=error.key)
    return error
