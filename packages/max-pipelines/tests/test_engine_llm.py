"""LLM on tiny random Llama/Qwen models: greedy tokens equal HF transformers', whatever the batching."""

import pytest
import torch
from fixtures.tiny_llm import PROMPTS, hf_greedy, make_llm, save_tiny

from max_config import ConfigError, PipelineConfig, SamplingParams
from max_pipelines import LLM

NEW = 6


def build(tmp_path_factory, arch):
    path = tmp_path_factory.mktemp(arch)
    model = save_tiny(path, arch)
    return path, [hf_greedy(model, p, NEW) for p in PROMPTS], model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build(tmp_path_factory, "llama")


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    return build(tmp_path_factory, "qwen2")


GREEDY = SamplingParams(temperature=0.0, max_new_tokens=NEW, ignore_eos=True)


@pytest.mark.parametrize("arch", ["tiny", "tiny_qwen"])
def test_greedy_batch_matches_hf_and_one_at_a_time(arch, request):
    path, ref, _ = request.getfixturevalue(arch)
    llm = make_llm(path)
    outs = llm.generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in outs] == ref
    assert [llm.generate([p], GREEDY)[0].token_ids for p in PROMPTS] == ref
    assert all(o.stop_reason == "max_new_tokens" for o in outs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(enable_prefix_caching=False, kv_cache_page_size=16),
        dict(max_batch_input_tokens=4),
        dict(max_batch_input_tokens=5, enable_chunked_prefill=False, kv_cache_page_size=1),
        dict(kv_cache_page_size=128, enable_in_flight_batching=True),
    ],
)
def test_same_tokens_under_every_batching_setting(tiny, kwargs):
    path, ref, _ = tiny
    prompts = PROMPTS if kwargs.get("enable_chunked_prefill", True) else [p[:5] for p in PROMPTS]
    llm = make_llm(path, **kwargs)
    if prompts is PROMPTS:
        assert [o.token_ids for o in llm.generate(prompts, GREEDY)] == ref
    else:
        assert all(len(o.token_ids) == NEW for o in llm.generate(prompts, GREEDY))


def test_prefix_cache_hit_gives_same_tokens(tiny):
    path, ref, _ = tiny
    llm = make_llm(path, kv_cache_page_size=4)
    first = llm.generate([PROMPTS[1]], GREEDY)[0].token_ids
    again = llm.generate([PROMPTS[1]], GREEDY)[0].token_ids
    assert first == again == ref[1]
    assert llm.kv_manager.stats.hits > 0


def test_preemption_under_a_tiny_kv_budget_gives_same_tokens(tiny):
    path, ref, _ = tiny
    config = PipelineConfig.from_flat(model_path=str(path), devices="cpu", max_length=256, kv_cache_page_size=4)
    llm = LLM.from_config(config, num_blocks=9)
    params = SamplingParams(temperature=0.0, max_new_tokens=NEW, ignore_eos=True)
    outs = llm.generate(PROMPTS, params)
    assert llm.scheduler.stats.num_preemptions > 0
    assert [o.token_ids for o in outs] == ref


def test_stream_concatenates_to_generate_text(tiny):
    path, _, _ = tiny
    llm = make_llm(path)
    full = llm.generate(["hello wörld"], GREEDY, use_chat_template=False)[0]
    deltas = list(llm.stream("hello wörld", GREEDY, use_chat_template=False))
    assert "".join(d.text for d in deltas) == full.text
    assert [t for d in deltas for t in d.token_ids] == full.token_ids
    assert deltas[-1].finished and deltas[-1].stop_reason == "max_new_tokens"
    m = full.metrics
    assert m.arrival_time <= m.first_token_time <= m.finish_time and len(m.token_times) == NEW


def test_echo_prompt_logprobs_match_hf(tiny):
    path, _, model = tiny
    prompt = PROMPTS[1]
    llm = make_llm(path, max_batch_input_tokens=5)
    out = llm.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=1, echo=True))[0]
    with torch.inference_mode():
        logits = model(torch.tensor([prompt])).logits[0].double()
    expected = torch.log_softmax(logits, -1)[torch.arange(len(prompt) - 1), torch.tensor(prompt[1:])]
    assert out.prompt_logprobs == pytest.approx(expected.tolist(), abs=1e-3)


def test_stop_string_cuts_the_text_and_ends_the_request(tiny):
    path, ref, _ = tiny
    llm = make_llm(path)
    long = SamplingParams(temperature=0.0, max_new_tokens=12, ignore_eos=True)
    full = llm.generate(["hi"], long, use_chat_template=False)[0]
    stop = full.text[3:5]
    cut = full.text[: full.text.index(stop)]
    params = SamplingParams(temperature=0.0, max_new_tokens=12, ignore_eos=True, stop=(stop,))
    out = llm.generate(["hi"], params, use_chat_template=False)[0]
    assert out.stop_reason == "stop_string"
    assert out.text == cut
    assert len(out.token_ids) < 12
    assert "".join(d.text for d in llm.stream("hi", params, use_chat_template=False)) == cut


def test_context_limit_stops_with_max_length(tiny):
    path, ref, _ = tiny
    llm = LLM(model=str(path), devices="cpu", max_length=10)
    out = llm.generate([PROMPTS[0]], SamplingParams(temperature=0.0, max_new_tokens=50, ignore_eos=True))[0]
    assert out.stop_reason == "max_length"
    assert out.token_ids == ref[0][:3]


def test_seeded_sampling_does_not_depend_on_the_batch(tiny):
    path, _, _ = tiny
    llm = make_llm(path)
    seeded = SamplingParams(temperature=1.0, top_k=50, max_new_tokens=NEW, ignore_eos=True, seed=7)
    other = SamplingParams(temperature=0.8, max_new_tokens=NEW + 3, ignore_eos=True)
    alone = llm.generate([PROMPTS[0]], seeded)[0].token_ids
    batch = llm.generate([PROMPTS[1], PROMPTS[0], PROMPTS[2]], [other, seeded, other])
    assert batch[1].token_ids == alone
    unseeded = [llm.generate([PROMPTS[0]], other)[0].token_ids for _ in range(3)]
    assert len({tuple(t) for t in unseeded}) > 1


def test_zero_new_tokens_returns_no_tokens(tiny):
    path, _, _ = tiny
    llm = make_llm(path)
    out = llm.generate([PROMPTS[0], PROMPTS[1]], [SamplingParams(max_new_tokens=0), GREEDY])
    assert out[0].token_ids == [] and out[0].text == "" and out[0].stop_reason == "max_new_tokens"
    assert len(out[1].token_ids) == NEW


def test_prompt_errors_name_the_flag(tiny):
    path, _, _ = tiny
    llm = make_llm(path)
    with pytest.raises(ConfigError, match="--prompt"):
        llm.generate([[]], GREEDY)
    with pytest.raises(ConfigError, match="--max-length 256"):
        llm.generate([list(range(2, 258))], GREEDY)
    assert not llm.scheduler.has_unfinished


def test_longrope_prompts_past_the_original_context_are_cached_apart(tmp_path):
    """Phi-3 longrope: a prompt longer than the original context (64 here) rotates every position with
    the long factors, so a shorter prompt sharing its first tokens must not reuse those KV blocks;
    both match transformers' greedy tokens."""
    from fixtures.tiny_models import make_tiny_model

    hf = make_tiny_model("phi3", tmp_path, tokenizer=True)
    g = torch.Generator().manual_seed(3)
    long_prompt = torch.randint(3, 128, (70,), generator=g).tolist()
    short_prompt = long_prompt[:40]
    params = SamplingParams(temperature=0.0, max_new_tokens=6, ignore_eos=True)
    llm = make_llm(tmp_path, kv_cache_page_size=4, max_num_steps=1)
    assert llm.generate([long_prompt], params)[0].token_ids == hf_greedy(hf, long_prompt, 6)
    assert llm.generate([short_prompt], params)[0].token_ids == hf_greedy(hf, short_prompt, 6)
    again = llm.generate([long_prompt], params)[0]  # its own blocks are reused
    assert again.token_ids == hf_greedy(hf, long_prompt, 6) and llm.kv_stats.hits >= 64
    # prefilled in chunks of 32: the first chunks, still short of 64 tokens, are rotated as the long prompt
    chunked = make_llm(tmp_path, kv_cache_page_size=4, max_num_steps=1, max_batch_input_tokens=32, max_batch_size=1)
    assert chunked.generate([long_prompt], params)[0].token_ids == hf_greedy(hf, long_prompt, 6)
