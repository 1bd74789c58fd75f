"""Settings of the `max generate` command itself (prompts, warmups, printing)."""

from pydantic import BaseModel, ConfigDict

from .fields import setting

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
