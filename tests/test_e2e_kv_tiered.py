"""`max generate` end to end with KV connectors and KV formats on a tiny random Llama.

The tiered connector shares blocks between two processes through one directory; another model's
weights never read them. Greedy outputs are checked against HF transformers.
"""

import importlib.util
import json
import re
import subprocess
import sys
from contextlib import contextmanager

import pytest
import torch
from click.testing import CliRunner
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.models.llama import modeling_llama

from max_cli.main import cli

PROMPT = "The quick brown fox jumps over the lazy dog, again and again."
NEW = 5
PAGE = 4
KV_LINE = re.compile(r"KV cache: (\d+) prefix tokens reused \((\d+) from connector\)")


def _byte_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<s>": 0, "</s>": 1} | {c: i + 2 for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


def _save_llama(path, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=258, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.3, bos_token_id=0, eos_token_id=1,
        tie_word_embeddings=False, rms_norm_eps=1e-5,
    )
    model = LlamaForCausalLM(config).float().eval()
    model.save_pretrained(path, safe_serialization=True)
    _byte_tokenizer().save_pretrained(path)
    return model


@contextmanager
def _kv_rounded_to(model: LlamaForCausalLM, kv_format: str):
    """HF attention reading keys (after RoPE) and values rounded to `kv_format`, as a paged cache of
    that format holds them (float8 with the default per-tensor scale of 1)."""
    dtype = getattr(torch, kv_format)
    if dtype == torch.float32:
        yield
        return

    def rounded(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype).to(t.dtype)

    rope = modeling_llama.apply_rotary_pos_emb

    def rope_then_round(q, k, *args, **kwargs):
        q, k = rope(q, k, *args, **kwargs)
        return q, rounded(k)

    modeling_llama.apply_rotary_pos_emb = rope_then_round
    hooks = [layer.self_attn.v_proj.register_forward_hook(lambda m, i, o: rounded(o)) for layer in model.model.layers]
    try:
        yield
    finally:
        modeling_llama.apply_rotary_pos_emb = rope
        for hook in hooks:
            hook.remove()


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """The model folder and HF's greedy continuations of PROMPT (as printed with --no-detokenize),
    by KV format."""
    path = tmp_path_factory.mktemp("llama")
    model = _save_llama(path, seed=0)
    ids = _byte_tokenizer().encode(PROMPT)
    refs = {}
    for kv_format in ("float32", "bfloat16", "float8_e4m3fn"):
        with torch.inference_mode(), _kv_rounded_to(model, kv_format):
            out = model.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, eos_token_id=None, pad_token_id=0,
            )
        refs[kv_format] = [int(t) for t in out[0, len(ids):]]
    return path, refs


def _flags(path, *extra: str) -> list[str]:
    return [
        "generate", "--model-path", str(path), "--prompt", PROMPT, "--max-new-tokens", str(NEW),
        "--temperature", "0", "--ignore-eos", "--no-detokenize", "--devices", "cpu", "--max-length", "128",
        "--kv-cache-page-size", str(PAGE), *extra,
    ]


def _tokens(stdout: str) -> list[int]:
    return [int(t) for t in stdout.split()]


def _reused(stderr: str) -> tuple[int, int]:
    match = KV_LINE.search(stderr)
    assert match, stderr
    return int(match[1]), int(match[2])


def _in_process(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _subprocess(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from max_cli.main import main; sys.argv[0] = 'max'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=180)


def test_tiered_blocks_cross_processes_and_stay_with_their_model(llama, tmp_path_factory):
    path, refs = llama
    ref = refs["float32"]
    disk = tmp_path_factory.mktemp("kv")
    connector = ["--kv-connector", "tiered", "--kv-connector-config", json.dumps({"disk_dir": str(disk), "host_gb": 0.01})]
    first = _subprocess(*_flags(path, *connector))
    assert first.returncode == 0, first.stderr
    assert _tokens(first.stdout) == ref
    assert _reused(first.stderr) == (0, 0)
    second = _subprocess(*_flags(path, *connector))
    assert second.returncode == 0, second.stderr
    num_prompt = int(re.search(r"Prompt size: (\d+) tokens", second.stderr)[1])
    full_blocks = (num_prompt - 1) // PAGE * PAGE  # never the last prompt token
    assert _reused(second.stderr) == (full_blocks, full_blocks)
    assert _tokens(second.stdout) == ref
    other = tmp_path_factory.mktemp("other")
    _save_llama(other, seed=1)
    result = _in_process(*_flags(other, *connector))
    assert result.exit_code == 0, result.stderr
    assert _reused(result.stderr) == (0, 0)


@pytest.mark.parametrize("kv_format", ["bfloat16", "float8_e4m3fn"])
def test_kv_cache_formats_run_end_to_end(llama, kv_format):
    path, refs = llama
    result = _in_process(*_flags(path, "--kv-cache-format", kv_format))
    assert result.exit_code == 0, result.stderr
    assert _tokens(result.stdout) == refs[kv_format]


@pytest.mark.skipif(importlib.util.find_spec("lmcache") is not None, reason="the LMCache package is installed")
def test_lmcache_without_its_package_is_one_clear_error(llama):
    path, _ = llama
    result = _in_process(*_flags(path, "--kv-connector", "lmcache"))
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: --kv-connector lmcache needs the LMCache package: pip install max-kvcache[lmcache]"]
    assert "Traceback" not in result.output and result.stdout == ""
