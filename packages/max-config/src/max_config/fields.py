"""`setting()`: a pydantic field that also describes its command-line flag.

Every configuration field is declared once, with `setting(default, help, ...)`; the flag table
(`flags.py`) and the click options are derived from these declarations.
"""

from typing import Any, Callable

from pydantic import Field


def setting(
    default: Any = None,
    help: str = "",
    *,
    default_factory: Callable[[], Any] | None = None,
    default_text: str | None = None,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    value_flag: bool = False,
    parse: str | None = None,
    **constraints: Any,
) -> Any:
    """Declare a config field.

    default_text: how `--help` shows the default when the value alone does not say it.
    flag: the flag's spelling when it is not `--` + the name with dashes (e.g. `--image_url`).
    aliases: extra flag spellings (e.g. `--model` for `--model-path`).
    value_flag: a boolean taken as `--flag true|false` instead of `--flag/--no-flag`.
    parse: how a string becomes the value: "mapping" (inline JSON/YAML or a file path),
        "int_list" (comma-separated integers).
    """
    extra = {
        "default_text": default_text,
        "flag": flag,
        "aliases": list(aliases),
        "value_flag": value_flag,
        "parse": parse,
    }
    if default_factory is not None:
        return Field(default_factory=default_factory, description=help, json_schema_extra=extra, **constraints)
    return Field(default, description=help, json_schema_extra=extra, **constraints)
