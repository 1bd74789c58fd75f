"""The `max` command group, and how it reports errors.

Every user error (click's usage errors and max_config's ConfigError) prints one line on stderr and
exits 2; `--debug` adds the traceback. An unexpected failure prints one line and exits 1.
"""

import sys
import traceback
from typing import Any

import click

from max_config import ConfigError

from .generate import generate


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class MaxGroup(click.Group):
    """A click group whose errors are one line each."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            sys.exit(0)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
            self._fail(f"Error: {_one_line(exc.format_message())}{hint}", debug, 2)
        except ConfigError as exc:
            self._fail(f"Error: {_one_line(exc)}", debug, 2)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug: say so in one line unless --debug asks for the traceback
            if debug:
                raise
            self._fail(f"Error: {type(exc).__name__}: {_one_line(exc)} (run with --debug for the traceback)", debug, 1)
        sys.exit(code if isinstance(code, int) else 0)

    @staticmethod
    def _fail(line: str, debug: bool, code: int) -> None:
        if debug:
            traceback.print_exc()
        click.echo(line, err=True)
        sys.exit(code)


@click.group(cls=MaxGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
def cli() -> None:
    """max: run large language models."""


cli.add_command(generate)


def main() -> None:
    cli.main(prog_name="max")
