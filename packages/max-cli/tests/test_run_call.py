"""After validation, `max generate` hands the config, prompts and sampling params to run_generate."""

import sys
import types

import pytest

from max_config import DEFAULT_PROMPT, PipelineConfig, SamplingParams
from max_config.default_model import DEFAULT_MODEL_GENERATION_CONFIG


@pytest.fixture
def calls(monkeypatch):
    recorded = []

    def run_generate(config, prompts, sampling_params, num_warmups):
        recorded.append((config, prompts, sampling_params, num_warmups))
        return 3

    module = types.ModuleType("max_cli.generate_run")
    module.run_generate = run_generate
    monkeypatch.setitem(sys.modules, "max_cli.generate_run", module)
    return recorded


def test_flags_become_the_run_arguments(invoke, calls, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("from file one\n\nfrom file two\n")
    result = invoke("generate", "--prompt", "a", "--prompt", "b", "--prompt-file", str(prompts), "--num-warmups", "2",
                    "--kv-cache-page-size", "64", "--top-k", "5", "--stop", "END", "--stop-token-ids", "7,8",
                    "--devices", "cpu")
    assert result.exit_code == 3, result.output
    (config, prompt_list, params, warmups), = calls
    assert isinstance(config, PipelineConfig) and config.kv_cache.kv_cache_page_size == 64
    assert config.model.devices == "cpu"
    assert prompt_list == ["a", "b", "from file one", "from file two"]
    assert warmups == 2
    # No --model: the embedded model's recommended sampling fills what the flags leave unset.
    recommended = {k: v for k, v in DEFAULT_MODEL_GENERATION_CONFIG.items() if k != "do_sample"}
    assert params == SamplingParams(top_k=5, max_new_tokens=100, stop=("END",), stop_token_ids=(7, 8), **recommended)


def test_default_prompt_and_print_config_never_runs(invoke, calls):
    assert invoke("generate").exit_code == 3
    assert calls[0][1] == [DEFAULT_PROMPT]
    assert invoke("generate", "--print-config").exit_code == 0
    assert len(calls) == 1


def test_bad_input_never_runs(invoke, calls):
    assert invoke("generate", "--temperature", "9").exit_code == 2
    assert calls == []
