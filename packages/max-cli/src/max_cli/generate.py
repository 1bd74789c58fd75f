"""`max generate`: validate the flags into a PipelineConfig and SamplingParams, then run.

Nothing here loads weights: `--print-config` stops after resolution, and generation itself happens
in `max_cli.generate_run.run_generate`.
"""

from pathlib import Path
from typing import Any

import click

from max_config import DEFAULT_PROMPT, ConfigError, GenerateOptions, check_supported, generate_flags, resolve_pipeline
from max_config.generate import build_generate_config
from max_config.print_config import render_config
from max_config.sources import Settings, describe_error, gather

from .options import given_flags, with_flags

FLAGS = generate_flags()


def read_prompts(options: GenerateOptions) -> list[str]:
    """`--prompt` values, then the lines of `--prompt-file`; the default prompt when there are none."""
    prompts = list(options.prompt)
    if options.prompt_file is not None:
        path = Path(options.prompt_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--prompt-file {options.prompt_file}: cannot read it ({exc})") from None
        from_file = [line for line in lines if line.strip()]
        if not from_file:
            raise ConfigError(f"--prompt-file {options.prompt_file}: holds no prompts (one prompt a line)")
        prompts += from_file
    return prompts or [DEFAULT_PROMPT]


def run(cli_values: dict[str, Any]) -> int:
    """Validate and resolve the flags the user gave, then print the config or generate."""
    settings = Settings()
    try:
        settings = gather(cli_values, flags=FLAGS)
        config, options = build_generate_config(settings.values)
        check_supported(config, options, FLAGS)
        prompts = read_prompts(options)
        resolved = None if config.defer_resolve else resolve_pipeline(config)
        generation_config = resolved.files.generation_config if resolved is not None else {}
        params = config.sampling.to_params(generation_config)
    except ConfigError as exc:
        raise describe_error(exc, settings) from None
    if options.print_config:
        click.echo(render_config(config, options, settings, FLAGS, resolved, params), nl=False)
        return 0
    from .generate_run import run_generate

    return run_generate(config, prompts, params, options.num_warmups)


@with_flags(FLAGS)
@click.command(context_settings={"max_content_width": 120})
@click.pass_context
def generate(ctx: click.Context, **values: Any) -> int:
    """Generate text from a model and prompts, without a server."""
    return run(given_flags(ctx, values))
