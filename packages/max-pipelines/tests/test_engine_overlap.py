"""--enable-overlap-scheduler: a round's decode steps pipelined, one in flight, with the outputs of
one step at a time (greedy against transformers; stops, stop strings and seeded draws against the
plain engine)."""

import dataclasses
import shutil

import gguf
import pytest
from fixtures.tiny_gguf import write_llama_gguf
from fixtures.tiny_llm import PROMPTS, make_llm, tiny_llama_greedy
from fixtures.tiny_models import make_tiny_model

from max_config import ConfigError, PipelineConfig, SamplingParams
from max_pipelines import LLM
from max_pipelines.engine.model_runner import ModelRunner

NEW = 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama_overlap")
    return path, tiny_llama_greedy(path, NEW)


@pytest.fixture
def lags(monkeypatch):
    """The `lag` of every decode step the overlap scheduler queues."""
    seen = []
    launch = ModelRunner.launch_decode

    def spy(self, seqs, input_ids, lag):
        seen.append(lag)
        return launch(self, seqs, input_ids, lag)

    monkeypatch.setattr(ModelRunner, "launch_decode", spy)
    return seen


def outputs(path, params, **kwargs):
    llm = make_llm(path, kv_cache_page_size=4, **kwargs)
    return [(o.token_ids, o.stop_reason) for o in llm.generate(PROMPTS, params)]


def test_pipelined_greedy_matches_transformers(tiny, lags):
    path, ref = tiny
    params = SamplingParams(temperature=0.0, max_new_tokens=NEW, ignore_eos=True)
    got = outputs(path, params, enable_overlap_scheduler=True, max_num_steps=5)
    assert [ids for ids, _ in got] == ref
    assert lags.count(1) > lags.count(0) > 0  # most steps were queued before the previous one was read


def test_stops_inside_a_round_drop_the_token_computed_past_them(tiny, lags):
    path, ref = tiny
    stop_ids = tuple(t for t in (ref[0][2], ref[1][6]) if t not in ref[2])
    assert len(stop_ids) == 2, "pick other stop positions for this seed"
    params = [SamplingParams(temperature=0.0, max_new_tokens=n, ignore_eos=True, stop_token_ids=stop_ids) for n in (NEW, NEW, 7)]
    plain = outputs(path, params, max_num_steps=1)
    assert outputs(path, params, enable_overlap_scheduler=True, max_num_steps=4) == plain
    assert [reason for _, reason in plain] == ["stop_token", "stop_token", "max_new_tokens"]
    assert lags


def test_seeded_sampling_and_stop_strings_equal_one_step_at_a_time(tiny, lags):
    path, _ = tiny
    params = SamplingParams(temperature=0.9, top_k=50, seed=3, max_new_tokens=NEW, ignore_eos=True)
    text = make_llm(path).generate(PROMPTS[:1], params)[0].text
    params = dataclasses.replace(params, stop=(text[4:6],))  # ends the first request mid-round
    plain = outputs(path, params, max_num_steps=1)
    assert outputs(path, params, enable_overlap_scheduler=True, max_num_steps=6) == plain
    assert any(reason == "stop_string" for _, reason in plain)
    assert lags.count(1) > 0


def test_requests_that_need_host_tokens_run_one_step_at_a_time(tiny, lags):
    path, _ = tiny
    params = SamplingParams(temperature=0.9, seed=5, max_new_tokens=NEW, ignore_eos=True, repetition_penalty=1.3, logprobs=2)
    assert outputs(path, params, enable_overlap_scheduler=True, max_num_steps=6) == outputs(path, params, max_num_steps=1)
    assert lags == []


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
def test_native_decode_steps_pipelined(tmp_path, lags):
    """The native CPU step takes the previous step's token tensor as its input ids."""
    hf = make_tiny_model("llama", tmp_path / "hf")
    path = write_llama_gguf(hf, tmp_path / "tiny.gguf", gguf.GGMLQuantizationType.Q8_0, tokenizer=True)
    params = SamplingParams(temperature=0.0, max_new_tokens=NEW, ignore_eos=True)

    def run(**kwargs):
        llm = LLM(model=str(path), devices="cpu", max_length=128, **kwargs)
        assert llm.runner.native is not None
        return [o.token_ids for o in llm.generate([[t % 100 for t in p] for p in PROMPTS], params)]

    assert run(enable_overlap_scheduler=True) == run()
    assert lags.count(1) > 0


def test_overlap_needs_multi_step_rounds(tiny):
    path, _ = tiny
    with pytest.raises(ConfigError, match="--enable-overlap-scheduler .* --max-num-steps above 1"):
        PipelineConfig.from_flat(model_path=str(path), enable_overlap_scheduler=True, max_num_steps=1)
    auto = make_llm(path, enable_overlap_scheduler=True)
    assert auto.overlap and auto.max_num_steps == 10
