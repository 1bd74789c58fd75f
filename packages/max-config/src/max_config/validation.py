"""Turn pydantic's validation errors into one-line `ConfigError`s that name the flag."""

import re

from pydantic import ValidationError

from .errors import ConfigError


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def config_error(exc: ValidationError, prefix: str = "") -> ConfigError:
    """The first error of `exc` as a `ConfigError`; `prefix` is prepended to field names (e.g. "draft_")."""
    error = exc.errors()[0]
    message = str(error.get("msg", "invalid value"))
    for lead in ("Value error, ", "Assertion failed, "):
        if message.startswith(lead):
            message = message[len(lead):]
    loc = [part for part in error.get("loc", ()) if isinstance(part, str)]
    if not loc or message.startswith("--"):
        named = re.match(r"--([a-z0-9-]+)", message)
        return ConfigError(message, key=prefix + named.group(1).replace("-", "_") if named else None)
    key = prefix + loc[0]
    if error.get("type") == "extra_forbidden":
        return ConfigError(f"unknown setting '{loc[0]}'", key=key)
    detail = message[0].lower() + message[1:]
    if error.get("type") != "value_error":
        got = repr(error.get("input"))
        detail += f", got {got if len(got) <= 80 else got[:77] + '...'}"
    return ConfigError(f"{flag_name(key)}: {detail}", key=key)
