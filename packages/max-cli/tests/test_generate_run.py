"""run_generate on a tiny random Llama: streamed stdout equals LLM.generate's text, the report is on stderr."""

import torch
from transformers import LlamaForCausalLM

from max_cli.generate_run import run_generate
from max_config import PipelineConfig, SamplingParams
from max_pipelines import LLM


def config_for(path, **kwargs):
    return PipelineConfig.from_flat(model_path=str(path), devices="cpu", max_length=128, **kwargs)


PARAMS = SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True)


def test_streams_the_text_then_reports(tiny_llama, capsys):
    expected = LLM.from_config(config_for(tiny_llama)).generate(["Hello"], PARAMS)[0]
    assert run_generate(config_for(tiny_llama), ["Hello"], PARAMS, 0) == 0
    out, err = capsys.readouterr()
    assert out == expected.text + "\n"
    for line in ("Prompt size: ", "Output size: 8 tokens", "Startup time: ", "Time to first token: ",
                 "Prompt eval throughput: ", "Eval throughput: ", "Peak memory: ",
                 "Stop reason: max_new_tokens (hit --max-new-tokens 8)"):
        assert line in err
    assert "p50/p90/p99" not in err


def test_warmups_add_percentiles(tiny_llama, capsys):
    assert run_generate(config_for(tiny_llama), ["Hi"], PARAMS, 2) == 0
    err = capsys.readouterr().err
    assert "warm-up 2/2" in err
    assert "Time to first token p50/p90/p99: " in err
    assert "Inter-token latency p50/p90/p99: " in err


def test_several_prompts_are_one_batch_printed_in_order(tiny_llama, capsys):
    prompts = ["first prompt", "second", "a third, longer prompt"]
    expected = LLM.from_config(config_for(tiny_llama)).generate(prompts, PARAMS)
    assert run_generate(config_for(tiny_llama), prompts, PARAMS, 0) == 0
    out, err = capsys.readouterr()
    assert out == "".join(f"[{i + 1}] {o.text}\n" for i, o in enumerate(expected))
    assert "Output size: 24 tokens" in err


def test_no_detokenize_prints_token_ids(tiny_llama, capsys):
    params = SamplingParams(temperature=0.0, max_new_tokens=5, ignore_eos=True, detokenize=False)
    expected = LLM.from_config(config_for(tiny_llama)).generate(["Hello"], params)[0]
    assert run_generate(config_for(tiny_llama), ["Hello"], params, 0) == 0
    out = capsys.readouterr().out
    assert [int(t) for t in out.split()] == expected.token_ids


def test_config_errors_print_one_line_and_return_2(tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    assert run_generate(config_for(missing), ["Hello"], PARAMS, 0) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("Error: ") and len([e for e in err if e.startswith("Error")]) == 1


def test_logprobs_flag_prints_the_float64_log_softmax(tiny_llama, invoke):
    result = invoke("generate", "--model", str(tiny_llama), "--devices", "cpu", "--max-length", "128", "--prompt",
                    "Hello", "--prompt", "Hi there", "--temperature", "0", "--max-new-tokens", "4", "--ignore-eos",
                    "--no-detokenize", "--logprobs", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and lines[1].startswith("logprobs: ") and lines[3].startswith("logprobs: ")
    hf = LlamaForCausalLM.from_pretrained(tiny_llama).double().eval()
    llm = LLM.from_config(config_for(tiny_llama))
    for i, prompt in enumerate(["Hello", "Hi there"]):
        generated = [int(t) for t in lines[2 * i].removeprefix(f"[{i + 1}] ").split()]
        groups = [[tuple(pair.split(":")) for pair in g.split("/")] for g in lines[2 * i + 1].split()[1:]]
        ids = llm.encode(prompt)
        with torch.inference_mode():
            logits = hf(torch.tensor([ids + generated])).logits[0, len(ids) - 1 : -1]
        reference = torch.log_softmax(logits, dim=-1)
        assert len(groups) == len(generated) == 4
        for token, group, ref in zip(generated, groups, reference):
            printed = {int(t): float(lp) for t, lp in group}
            assert int(group[0][0]) == token
            assert set(printed) == {token, *ref.topk(2).indices.tolist()}
            assert all(abs(lp - ref[t].item()) < 1e-3 for t, lp in printed.items())
