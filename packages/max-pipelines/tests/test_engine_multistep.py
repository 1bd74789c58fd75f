"""--max-num-steps: decode bursts give the tokens of one step per round, with finishes inside a burst."""

import pytest
import torch
from fixtures.tiny_llm import PROMPTS, make_llm, tiny_llama_greedy

from max_config import PipelineConfig, SamplingParams
from max_pipelines import LLM
from max_pipelines.engine.multistep import resolve_num_steps

NEW = 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama_multistep")
    return path, tiny_llama_greedy(path, NEW)


def run(path, steps, params):
    llm = make_llm(path, max_num_steps=steps, kv_cache_page_size=4)
    outs = llm.generate(PROMPTS, params)
    return [(o.token_ids, o.stop_reason) for o in outs], llm.scheduler.stats.num_steps


def test_auto_is_one_step_on_cpu_and_ten_on_a_gpu():
    assert resolve_num_steps(-1, torch.device("cpu")) == 1
    assert resolve_num_steps(-1, torch.device("cuda", 0)) == 10
    assert resolve_num_steps(3, torch.device("cpu")) == 3


def test_bursts_match_hf_greedy_with_fewer_scheduling_rounds(tiny):
    path, ref = tiny
    params = SamplingParams(temperature=0.0, max_new_tokens=NEW, ignore_eos=True)
    single, rounds_single = run(path, 1, params)
    burst, rounds_burst = run(path, 5, params)
    assert [ids for ids, _ in single] == [ids for ids, _ in burst] == ref
    assert rounds_burst < rounds_single


def test_stop_tokens_and_length_limits_inside_a_burst(tiny):
    path, ref = tiny
    # Stop ids that end the first two requests inside a burst of 4 (at their 3rd and 7th tokens; the first
    # token comes from the prefill round), not the third request, which a length limit ends at 7 tokens.
    stop_ids = (ref[0][2], ref[1][6])
    stop_ids = tuple(t for t in stop_ids if t not in ref[2])
    assert len(stop_ids) == 2, "pick other stop positions for this seed"
    params = [
        SamplingParams(temperature=0.0, max_new_tokens=NEW, ignore_eos=True, stop_token_ids=stop_ids),
        SamplingParams(temperature=0.0, max_new_tokens=NEW, ignore_eos=True, stop_token_ids=stop_ids),
        SamplingParams(temperature=0.0, max_new_tokens=7, ignore_eos=True, stop_token_ids=stop_ids),
    ]
    llm_outs, rounds = {}, {}
    for steps in (1, 4):
        llm = make_llm(path, max_num_steps=steps, kv_cache_page_size=4)
        llm_outs[steps] = [(o.token_ids, o.stop_reason) for o in llm.generate(PROMPTS, params)]
        rounds[steps] = llm.scheduler.stats.num_steps
    assert llm_outs[1] == llm_outs[4]
    assert rounds[4] < rounds[1]
    expected = []
    for r, p in zip(ref, params):
        cut = next((i + 1 for i, t in enumerate(r) if t in stop_ids), None)
        if cut is not None and cut <= p.max_new_tokens:
            expected.append((r[:cut], "stop_token"))
        else:
            expected.append((r[: p.max_new_tokens], "max_new_tokens"))
    assert llm_outs[4] == expected


def test_sampled_requests_and_stop_strings_equal_single_steps(tiny):
    path, _ = tiny
    params = SamplingParams(temperature=0.9, top_k=50, seed=3, max_new_tokens=NEW, ignore_eos=True,
                            repetition_penalty=1.2, stop=("1",))
    single, _ = run(path, 1, params)
    burst, _ = run(path, 6, params)
    assert single == burst
    assert any(reason == "stop_string" for _, reason in single)  # a stop string ends a request mid-burst


def test_bursts_under_a_tight_kv_cache_keep_the_tokens(tiny):
    path, ref = tiny
    config = PipelineConfig.from_flat(model_path=str(path), devices="cpu", max_length=256, kv_cache_page_size=4,
                                      max_num_steps=4)
    llm = LLM.from_config(config, num_blocks=10)
    outs = llm.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=NEW, ignore_eos=True))
    assert llm.scheduler.stats.num_preemptions > 0
    assert [o.token_ids for o in outs] == ref
