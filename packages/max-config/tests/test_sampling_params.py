"""SamplingParams validates itself; SamplingConfig fills requests from generation_config."""

import dataclasses

import pytest

from max_config import ConfigError, PipelineConfig, SamplingParams


def test_defaults_follow_the_contract():
    params = SamplingParams()
    assert (params.temperature, params.top_k, params.top_p, params.min_p) == (1.0, -1, 1.0, 0.0)
    assert (params.repetition_penalty, params.min_new_tokens, params.logprobs) == (1.0, 0, 0)
    assert params.max_new_tokens is None and params.seed is None
    assert params.stop == () and params.stop_token_ids == () and params.detokenize and not params.echo


def test_frozen_and_lists_become_tuples():
    params = SamplingParams(stop=["a"], stop_token_ids=[3, 4])
    assert params.stop == ("a",) and params.stop_token_ids == (3, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.temperature = 0.5


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"temperature": -0.1}, "--temperature"),
        ({"temperature": 2.5}, "--temperature"),
        ({"temperature": float("nan")}, "--temperature"),
        ({"top_p": 1.01}, "--top-p"),
        ({"top_p": -0.1}, "--top-p"),
        ({"min_p": 1.5}, "--min-p"),
        ({"min_p": -1}, "--min-p"),
        ({"top_k": -2}, "--top-k"),
        ({"top_k": True}, "--top-k"),
        ({"frequency_penalty": 2.5}, "--frequency-penalty"),
        ({"presence_penalty": -3}, "--presence-penalty"),
        ({"repetition_penalty": 0}, "--repetition-penalty"),
        ({"max_new_tokens": -1}, "--max-new-tokens"),
        ({"max_new_tokens": True}, "--max-new-tokens"),
        ({"min_new_tokens": -1}, "--min-new-tokens"),
        ({"min_new_tokens": 5, "max_new_tokens": 4}, "--min-new-tokens"),
        ({"logprobs": -1}, "--logprobs"),
        ({"seed": -5}, "--seed"),
        ({"stop_token_ids": [-1]}, "--stop-token-ids"),
        ({"stop": [""]}, "--stop"),
    ],
)
def test_invalid_values_name_the_flag(kwargs, flag):
    with pytest.raises(ConfigError, match=f"^{flag}"):
        SamplingParams(**kwargs)


def test_edges_are_valid():
    SamplingParams(temperature=0.0, top_p=0.0, min_p=1.0, top_k=0, max_new_tokens=0, repetition_penalty=1e-3)
    SamplingParams(temperature=2.0, frequency_penalty=-2.0, presence_penalty=2.0, min_new_tokens=4, max_new_tokens=4)
    assert SamplingParams(temperature=0.0).is_greedy and SamplingParams(top_k=1).is_greedy


def test_generation_config_fills_unset_values_only():
    generation = {"temperature": 0.6, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1, "eos_token_id": 2}
    config = PipelineConfig.from_flat(top_p=0.5, max_new_tokens=7)
    params = config.sampling.to_params(generation)
    assert (params.temperature, params.top_p, params.top_k, params.repetition_penalty) == (0.6, 0.5, 50, 1.1)
    assert params.max_new_tokens == 7


def test_do_sample_false_means_greedy_unless_the_user_sets_temperature():
    assert PipelineConfig().sampling.to_params({"do_sample": False, "temperature": 0.7}).temperature == 0.0
    assert PipelineConfig.from_flat(temperature=0.3).sampling.to_params({"do_sample": False}).temperature == 0.3


def test_penalty_switch_conflicts():
    with pytest.raises(ConfigError, match="--no-enable-penalties"):
        PipelineConfig.from_flat(presence_penalty=0.5, enable_penalties=False)
    with pytest.raises(ConfigError, match="--min-new-tokens is set but --no-enable-min-tokens"):
        PipelineConfig.from_flat(min_new_tokens=2, enable_min_tokens=False)
    PipelineConfig.from_flat(presence_penalty=0.5, enable_penalties=True, min_new_tokens=2)


def test_invalid_generation_config_is_blamed_on_the_model_file():
    with pytest.raises(ConfigError, match="generation_config.json has an invalid value .*--temperature"):
        PipelineConfig().sampling.to_params({"temperature": 5.0})
    assert PipelineConfig.from_flat(temperature=0.5).sampling.to_params({"temperature": 5.0}).temperature == 0.5
