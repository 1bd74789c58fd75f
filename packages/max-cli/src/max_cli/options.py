"""Click options built from max_config's flag table, so every flag is declared once."""

from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from max_config import FlagSpec

_TYPES = {"int": click.INT, "float": click.FLOAT, "bool_value": click.BOOL}


def click_option(spec: FlagSpec) -> click.Option:
    """The click option of one flag. Its click default is empty: defaults live in max_config."""
    help_text = f"{spec.help} [default: {spec.default_text}]"
    if spec.kind == "bool":
        negative = "--no-" + spec.name[2:]
        return click.Option([f"{spec.name}/{negative}", spec.key], default=None, help=help_text)
    if spec.kind == "choice":
        kind: Any = click.Choice(spec.choices, case_sensitive=False)
    else:
        kind = _TYPES.get(spec.kind, click.STRING)
    return click.Option(
        [spec.name, *spec.aliases, spec.key],
        type=kind,
        multiple=spec.multiple,
        default=None,
        help=help_text,
    )


def with_flags(flags: list[FlagSpec]) -> Callable[[click.Command], click.Command]:
    def attach(command: click.Command) -> click.Command:
        command.params.extend(click_option(spec) for spec in flags)
        return command

    return attach


def given_flags(ctx: click.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The flags the user typed on the command line (lists for repeated flags)."""
    given = {}
    for key, value in values.items():
        if ctx.get_parameter_source(key) is ParameterSource.COMMANDLINE:
            given[key] = list(value) if isinstance(value, tuple) else value
    return given
