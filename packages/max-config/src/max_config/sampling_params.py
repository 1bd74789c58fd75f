"""`SamplingParams`: how one request is sampled and when it stops."""

import math
from dataclasses import dataclass, field

from .errors import ConfigError


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Per-request sampling settings; validates itself on creation.

    Rules: temperature in [0, 2] (0 means greedy); top_k is -1 or 0 (all tokens) or a positive count;
    top_p and min_p in [0, 1]; frequency and presence penalties in [-2, 2]; repetition_penalty > 0;
    token counts are non-negative integers (booleans are not counts) and min_new_tokens <= max_new_tokens.
    """

    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0
    min_p: float = 0.0
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    max_new_tokens: int | None = None
    min_new_tokens: int = 0
    ignore_eos: bool = False
    stop: tuple[str, ...] = field(default_factory=tuple)
    stop_token_ids: tuple[int, ...] = field(default_factory=tuple)
    detokenize: bool = True
    logprobs: int = 0
    echo: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))
        self._check_range("temperature", self.temperature, 0.0, 2.0)
        self._check_range("top_p", self.top_p, 0.0, 1.0)
        self._check_range("min_p", self.min_p, 0.0, 1.0)
        self._check_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        self._check_range("presence_penalty", self.presence_penalty, -2.0, 2.0)
        if not _is_number(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise ConfigError(f"--repetition-penalty must be a finite number above 0, got {self.repetition_penalty!r}")
        if not _is_int(self.top_k) or self.top_k < -1:
            raise ConfigError(f"--top-k must be -1 or 0 (all tokens) or a positive integer, got {self.top_k!r}")
        self._check_count("min_new_tokens", self.min_new_tokens)
        self._check_count("logprobs", self.logprobs)
        if self.max_new_tokens is not None:
            self._check_count("max_new_tokens", self.max_new_tokens)
            if self.min_new_tokens > self.max_new_tokens:
                raise ConfigError(
                    f"--min-new-tokens {self.min_new_tokens} is above --max-new-tokens {self.max_new_tokens}; "
                    "lower --min-new-tokens or raise --max-new-tokens"
                )
        if self.seed is not None:
            self._check_count("seed", self.seed)
        for token_id in self.stop_token_ids:
            if not _is_int(token_id) or token_id < 0:
                raise ConfigError(f"--stop-token-ids must be non-negative integers, got {token_id!r}")
        for text in self.stop:
            if not isinstance(text, str) or not text:
                raise ConfigError(f"--stop must be non-empty strings, got {text!r}")

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1

    @staticmethod
    def _check_range(name: str, value: object, low: float, high: float) -> None:
        if not _is_number(value) or not low <= value <= high:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be a number in [{low:g}, {high:g}], got {value!r}")

    @staticmethod
    def _check_count(name: str, value: object) -> None:
        if not _is_int(value) or value < 0:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be a non-negative integer, got {value!r}")
