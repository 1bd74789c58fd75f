"""Run the `max` command in-process with click's CliRunner."""

import pytest
from click.testing import CliRunner


@pytest.fixture
def invoke():
    from max_cli.main import cli

    def run(*args: str, env: dict[str, str] | None = None):
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return run
