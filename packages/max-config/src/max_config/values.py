"""Turn a raw value (an environment string, a config-file entry) into what a flag's field expects."""

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .flags import FlagSpec


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def read_text_file(path: Path, what: str) -> str:
    """A UTF-8 file's text; unreadable or not UTF-8 -> ConfigError naming `what` (the flag) and the path."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from None


def read_mapping_file(path: Path, what: str) -> Any:
    """The parsed content of a YAML or JSON file (any YAML value); unreadable or malformed -> ConfigError."""
    text = read_text_file(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what}: {path} is not valid YAML or JSON: {one_line(exc)}") from None


def parse_mapping(value: Any, what: str) -> dict[str, Any]:
    """A mapping given inline (JSON or YAML flow) or as the path of a YAML/JSON file."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected inline JSON or a YAML/JSON file path, got {value!r}")
    path = Path(value).expanduser()
    if path.is_file():
        parsed = read_mapping_file(path, what)
    else:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{what}: {value!r} is neither a readable YAML/JSON file nor an inline JSON object")
    return parsed


def parse_int_list(value: Any, what: str) -> list[Any]:
    """Comma-separated integers ("1,2,3"), or a list of them."""
    if isinstance(value, list):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
        try:
            return [int(part) for part in parts]
        except ValueError:
            pass
    raise ConfigError(f"{what}: expected comma-separated integers, got {value!r}")


def _parse_list(value: Any) -> list[Any]:
    """A list value from a file (a list or one item) or the environment (a JSON list, or one item)."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return [value]
        if isinstance(parsed, list):
            return parsed
    return [value]


def coerce(spec: FlagSpec, value: Any, what: str) -> Any:
    """The value for `spec`'s field; pydantic checks its type afterwards. `what` names the origin."""
    if spec.kind == "mapping":
        return parse_mapping(value, what)
    if spec.kind == "int_list":
        return parse_int_list(value, what)
    if spec.multiple:
        return _parse_list(value)
    if spec.kind == "choice" and isinstance(value, str):
        lowered = value.strip().lower()
        # Accept the spec's "KVConnectorType.null" spelling as well as "null".
        return lowered.rsplit(".", 1)[-1] if lowered.rsplit(".", 1)[-1] in spec.choices else lowered
    return value
