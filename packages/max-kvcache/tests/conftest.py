"""Shared fixtures: a minimal request object as the scheduler would pass it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass
class FakeRequest:
    request_id: str
    all_token_ids: list[int]
    num_prompt_tokens: int = 0
    num_computed_tokens: int = 0
    extra_keys: tuple = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self.num_prompt_tokens = self.num_prompt_tokens or len(self.all_token_ids)


@pytest.fixture
def make_request():
    return FakeRequest
