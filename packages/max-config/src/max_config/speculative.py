"""Speculative decoding settings (`--speculative-method`, `--num-speculative-tokens`, ...)."""

from pydantic import BaseModel, ConfigDict, model_validator

from .enums import RejectionSamplingStrategy, SpeculativeMethod
from .fields import setting


class SpeculativeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    speculative_method: SpeculativeMethod | None = setting(
        None, "The speculative decoding method to use.", default_text="off"
    )
    num_speculative_tokens: int | None = setting(
        None, "The number of speculative tokens.", default_text="2 when a method is set", ge=1
    )
    rejection_sampling_strategy: RejectionSamplingStrategy | None = setting(
        None,
        "Rejection sampling strategy for verifying draft tokens. Defaults to typical-acceptance for "
        "eagle/mtp and residual for standalone.",
        default_text="by method",
    )
    synthetic_acceptance_rate: float | None = setting(
        None,
        "Synthetic acceptance rate for benchmarking (0.0 to 1.0). When set, each draft position is accepted "
        "with a calibrated probability so the mean joint acceptance across num_speculative_tokens positions "
        "matches this value.",
        ge=0.0,
        le=1.0,
    )
    use_relaxed_acceptance_for_thinking: bool = setting(
        False,
        "Enables relaxed acceptance for speculative decoding draft positions inside a <think>...</think> "
        "block: a draft token matching any of the target's top-N candidates with probability at least "
        "top1_prob - relaxed_delta is accepted.",
    )
    relaxed_topk: int = setting(
        10,
        "Top-N candidates from the target distribution to consider when relaxed acceptance is active.",
        ge=1,
    )
    relaxed_delta: float = setting(
        0.6,
        "Probability gap below the top-1 candidate inside which candidates remain eligible for relaxed "
        "acceptance.",
        ge=0.0,
        le=1.0,
    )

    @model_validator(mode="after")
    def _needs_method(self) -> "SpeculativeConfig":
        if self.speculative_method is None and self.num_speculative_tokens is not None:
            raise ValueError("--num-speculative-tokens needs --speculative-method; set both or neither")
        return self
