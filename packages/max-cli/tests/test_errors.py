"""Every bad input: exit code 2, one line on stderr naming the flag or file, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

CASES = [
    (["--no-such-flag"], "No such option '--no-such-flag'"),
    (["--top-k", "abc"], "Invalid value for '--top-k': 'abc' is not a valid integer"),
    (["--temperature", "hot"], "Invalid value for '--temperature'"),
    (["--top-k"], "Option '--top-k' requires an argument"),
    (["--temperature", "-0.5"], "--temperature must be a number in [0, 2], got -0.5"),
    (["--top-p", "1.5"], "--top-p must be a number in [0, 1], got 1.5"),
    (["--min-p", "-0.1"], "--min-p must be a number in [0, 1]"),
    (["--max-new-tokens", "-1"], "--max-new-tokens must be a non-negative integer"),
    (["--min-new-tokens", "-2"], "--min-new-tokens must be a non-negative integer"),
    (["--kv-cache-page-size", "0"], "--kv-cache-page-size: must be a power of two from 1 to 1024, got 0"),
    (["--kv-cache-page-size", "100"], "--kv-cache-page-size: must be a power of two from 1 to 1024, got 100"),
    (["--kv-cache-page-size", "2048"], "--kv-cache-page-size: must be a power of two"),
    (["--device-memory-utilization", "1.5"], "--device-memory-utilization: input should be less than or equal to 1"),
    (["--num-warmups", "-1"], "--num-warmups: input should be greater than or equal to 0"),
    (["--rope-type", "sideways"], "Invalid value for '--rope-type': 'sideways' is not one of"),
    (["--quantization-encoding", "iq2_xxs"], "Invalid value for '--quantization-encoding'"),
    (["--model", "./nowhere/model"], "--model-path ./nowhere/model: no such file or folder"),
    (["--model-path", "/tmp/definitely/missing.gguf"], "no such file or folder"),
    (["--min-new-tokens", "10", "--max-new-tokens", "5"], "--min-new-tokens 10 is above --max-new-tokens 5"),
    (["--num-speculative-tokens", "3"], "--num-speculative-tokens needs --speculative-method"),
    (["--max-batch-size", "64", "--max-batch-input-tokens", "32"], "--max-batch-size 64 is above --max-batch-input-tokens 32"),
    (["--chat-template", "nofile.txt"], "--chat-template: 'nofile.txt' is neither a readable file nor an inline Jinja"),
    (["--chat-template", "{% if %}"], "--chat-template (inline template): not a valid Jinja template"),
    (["--model-override", "max_length"], "--model-override 'max_length': expected component.field=value"),
    (["--model-override", "vae.x=1"], "unknown component 'vae'"),
    (["--stop-token-ids", "1,x"], "--stop-token-ids: expected comma-separated integers"),
    (["--models", "{not json"], "--models: '{not json' is neither a readable YAML/JSON file nor an inline JSON object"),
    (["--config-file", "missing.yaml"], "--config-file: missing.yaml does not exist or is not a file"),
    (["--section-name", "x"], "--section-name needs --config-file"),
    (["--devices", "gpu"], "--devices gpu: no GPU is visible to torch; use --devices=cpu"),
    (["--devices", "tpu:0"], "--devices tpu:0: unknown device"),
    (["--enable-lora"], "not supported yet: --enable-lora"),
    (["--speculative-method", "eagle", "--num-speculative-tokens", "2"], "not supported yet: --speculative-method"),
    (["--image_url", "http://example.com/a.png"], "not supported yet: --image_url"),
    (["--data-parallel-degree", "2"], "not supported yet: --data-parallel-degree"),
    (["--draft-model-path", "x"], "not supported yet: --draft-model-path"),
    (["--max-length", "100000"], "--max-length 100000 is above the model's context length 8192"),
    (["--max-length", "8192", "--device-memory-utilization", "0.0001"], "--max-length 8192 needs 64 KV blocks"),
    (["--prompt-file", "no-prompts-here.txt"], "--prompt-file no-prompts-here.txt: cannot read it"),
    (["--custom-architectures", "no_such_module_abc"], "--custom-architectures no_such_module_abc: cannot import"),
    (["--weight-path", "nope.gguf"], "--weight-path nope.gguf: no such file"),
]


def check_one_line(result, expected):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("args", "expected"), CASES, ids=[" ".join(args) for args, _ in CASES])
def test_bad_input(invoke, args, expected):
    check_one_line(invoke("generate", "--print-config", *args), expected)


@pytest.mark.parametrize(
    ("text", "section", "expected"),
    [
        ("max_length: [1", None, "is not valid YAML or JSON"),
        ("just a string", None, "the top level must be a mapping of settings, got str"),
        ("unknown_key: 1", None, "unknown setting 'unknown_key'"),
        ("kv_cache_page_size: 12", None, "--kv-cache-page-size: must be a power of two"),
        ("a:\n  top_k: 1\n", "b", "--section-name: no section 'b'"),
    ],
)
def test_bad_config_files(invoke, tmp_path, text, section, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    args = ["--config-file", str(path)] + (["--section-name", section] if section else [])
    check_one_line(invoke("generate", "--print-config", *args), expected)


def test_unreadable_config_file_and_empty_prompt_file(invoke, tmp_path):
    check_one_line(invoke("generate", "--config-file", str(tmp_path)), "does not exist or is not a file")
    empty = tmp_path / "p.txt"
    empty.write_text("\n\n")
    check_one_line(invoke("generate", "--prompt-file", str(empty)), "holds no prompts")


def test_source_of_a_bad_value_is_named(invoke, tmp_path):
    result = invoke("generate", "--print-config", env={"MAX_TOP_P": "7"})
    check_one_line(result, "--top-p must be a number in [0, 1], got 7.0 (set by env MAX_TOP_P)")


def test_real_entry_point_prints_one_line():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "max"), "generate", "--kv-cache-page-size", "3"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: --kv-cache-page-size: must be a power of two from 1 to 1024, got 3"


def test_debug_shows_the_traceback(invoke):
    result = invoke("generate", "--debug", "--temperature", "-1")
    assert result.exit_code == 2 and "Traceback" in result.stderr
