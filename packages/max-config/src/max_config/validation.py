"""Turn pydantic's validation errors into one-line `ConfigError`s that name the flag."""

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
        return ConfigError(message)
    key = prefix + loc[-1]
    if error.get("type") == "extra_forbidden":
        return ConfigError(f"unknown setting '{loc[-1]}'", key=key)
    got = error.get("input")
    detail = message[0].lower() + message[1:]
    if error.get("type") != "value_error":
        detail += f", got {got!r}"
    return ConfigError(f"{flag_name(key)}: {detail}", key=key)
