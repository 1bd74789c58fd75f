"""Sampling settings: pipeline switches and the defaults of every request's `SamplingParams`.

A request value comes from, in order: the flag (or config file, or environment), the model's
`generation_config.json`, then the `SamplingParams` default.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from .errors import ConfigError
from .fields import setting
from .sampling_params import SamplingParams

_FROM_MODEL = "the model's generation_config, else {}"

# generation_config.json keys that fill request values the user left unset.
GENERATION_CONFIG_KEYS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty")


_REQUEST_KEYS = {
    "temperature", "top_k", "top_p", "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty",
    "max_new_tokens", "min_new_tokens", "ignore_eos", "stop", "stop_token_ids", "detokenize", "seed", "logprobs",
}


class SamplingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    temperature: float | None = setting(
        None,
        "Controls the randomness of the model's output; higher values produce more diverse responses. "
        "0 means greedy. Must be in [0, 2].",
        default_text=_FROM_MODEL.format("1.0"),
    )
    top_k: int | None = setting(
        None,
        "Limits the sampling to the K most probable tokens. -1 or 0 means all tokens. For greedy sampling, "
        "set to 1.",
        default_text=_FROM_MODEL.format("-1"),
    )
    top_p: float | None = setting(
        None,
        "Only use the tokens whose cumulative probability is within the top_p threshold. This applies to "
        "the top_k tokens. Must be in [0, 1].",
        default_text=_FROM_MODEL.format("1.0"),
    )
    min_p: float | None = setting(
        None,
        "Float that represents the minimum probability for a token to be considered, relative to the "
        "probability of the most likely token. Must be in [0, 1]. Set to 0 to disable this.",
        default_text=_FROM_MODEL.format("0.0"),
    )
    frequency_penalty: float = setting(
        0.0,
        "The frequency penalty to apply to the model's output. A positive value will penalize new tokens "
        "based on their frequency in the generated text. Must be in [-2, 2].",
    )
    presence_penalty: float = setting(
        0.0,
        "The presence penalty to apply to the model's output. A positive value will penalize new tokens that "
        "have already appeared in the generated text at least once. Must be in [-2, 2].",
    )
    repetition_penalty: float | None = setting(
        None,
        "The repetition penalty to apply to the model's output. Values > 1 will penalize new tokens that have "
        "already appeared in the prompt or the generated text.",
        default_text=_FROM_MODEL.format("1.0"),
    )
    max_new_tokens: int | None = setting(
        None,
        "Maximum number of new tokens to generate during a single inference pass of the model.",
        default_text="until --max-length",
    )
    min_new_tokens: int = setting(0, "Minimum number of tokens to generate in the response.")
    ignore_eos: bool = setting(
        False,
        "If True, the response will ignore the EOS token, and continue to generate until the max tokens or a "
        "stop string is hit.",
    )
    stop: list[str] = setting(
        help="A detokenized sequence that stops generation when it appears in the output. Can be specified "
        "multiple times.",
        default_factory=list,
    )
    stop_token_ids: list[int] = setting(
        help="A list of token ids that are used as stopping criteria when generating a new sequence. "
        "Comma-separated integers.",
        default_factory=list,
        parse="int_list",
    )
    detokenize: bool = setting(True, "Whether to detokenize the output tokens into text.")
    logprobs: int = setting(
        0,
        "Print, after each output, every generated token's log-probability and those of the N most likely "
        "tokens (of the raw logits, before penalties and temperature). 0 prints none.",
    )
    seed: int | None = setting(None, "Seed for the random number generator.", default_text="random")
    enable_penalties: bool | None = setting(
        None,
        "Whether to apply frequency, presence and repetition penalties to the model's output.",
        default_text="on when a penalty is set",
    )
    enable_min_tokens: bool | None = setting(
        None,
        "Whether to enable min_tokens, which blocks the model from generating stopping tokens before the "
        "min_tokens count is reached.",
        default_text="on when --min-new-tokens is set",
    )
    enable_structured_output: bool = setting(
        False,
        "Enable structured generation/guided decoding: the output follows a given JSON schema.",
    )
    enable_variable_logits: bool = setting(
        False,
        "Enable the sampling step to accept a ragged batch of logits, needed to produce additional logits "
        "for echo and speculative decoding.",
    )

    @model_validator(mode="after")
    def _check(self) -> "SamplingConfig":
        self.to_params({})
        penalised = self.frequency_penalty or self.presence_penalty or self.repetition_penalty not in (None, 1.0)
        if penalised and self.enable_penalties is False:
            raise ValueError("--no-enable-penalties turns off the penalty that is set; drop one of them")
        if self.min_new_tokens and self.enable_min_tokens is False:
            raise ValueError("--min-new-tokens is set but --no-enable-min-tokens turns it off; drop one of them")
        return self

    def to_params(self, generation_config: dict[str, Any]) -> SamplingParams:
        """The `SamplingParams` of a request: these settings over the model's generation config."""
        from_model: dict[str, Any] = {
            key: generation_config[key] for key in GENERATION_CONFIG_KEYS if generation_config.get(key) is not None
        }
        if generation_config.get("do_sample") is False:
            from_model["temperature"] = 0.0
        explicit = self.model_dump(include=_REQUEST_KEYS, exclude_none=True)
        SamplingParams(**explicit)  # the user's own values first, so their errors name their flags
        try:
            return SamplingParams(**{**from_model, **explicit})
        except (ConfigError, TypeError) as exc:
            raise ConfigError(
                f"the model's generation_config.json has an invalid value ({exc}); set that flag to override it"
            ) from None
