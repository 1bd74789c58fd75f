"""Settings of the `max generate` command itself (prompts, warmups, printing)."""

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .fields import setting
from .validation import config_error

if TYPE_CHECKING:
    from .pipeline import PipelineConfig

DEFAULT_PROMPT = "I believe the meaning of life is"

# Defaults that `max generate` sets differently from the library.
GENERATE_DEFAULTS = {"max_new_tokens": 100}


class GenerateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: list[str] = setting(
        help="The text prompt to use for generation. Repeatable: each prompt is a separate request.",
        default_factory=list,
        default_text=repr(DEFAULT_PROMPT),
    )
    prompt_file: str | None = setting(
        None, "A UTF-8 text file of prompts, one prompt a line (blank lines are skipped)."
    )
    num_warmups: int = setting(0, "Number of warmup runs to run before the final timed run.", ge=0)
    image_url: list[str] = setting(
        help="Images to include along with prompt, specified as URLs. Repeatable.",
        default_factory=list,
        flag="--image_url",
    )
    print_config: bool = setting(
        False,
        "Print the fully resolved configuration as YAML, with the source of every value, then exit. "
        "Loads no weights.",
    )
    debug: bool = setting(False, "Show the full traceback of an error.")


def build_generate_config(values: dict[str, Any]) -> "tuple[PipelineConfig, GenerateOptions]":
    """Split flat settings into the command's options and the pipeline config (with generate's defaults)."""
    from .pipeline import PipelineConfig

    own = {key: value for key, value in values.items() if key in GenerateOptions.model_fields}
    pipeline_values = {**GENERATE_DEFAULTS}
    pipeline_values.update((key, value) for key, value in values.items() if key not in own)
    try:
        options = GenerateOptions(**own)
    except ValidationError as exc:
        raise config_error(exc) from None
    return PipelineConfig.from_flat(**pipeline_values), options
