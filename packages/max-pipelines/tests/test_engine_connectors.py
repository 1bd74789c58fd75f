"""KV connectors wired into the engine: blocks evicted from the device come back from the connector,
the engine skips recomputing them, and the greedy tokens stay those of HF transformers."""

import shutil
import socket
import subprocess
import time

import pytest
from fixtures.tiny_llm import hf_greedy, save_tiny

from max_config import ConfigError, PipelineConfig, SamplingParams, resolve_model_files
from max_pipelines import LLM
from max_pipelines.engine.fingerprint import model_fingerprint

PAGE = 4
NEW = 5
PREFIX = [(7 * i + 3) % 250 + 2 for i in range(32)]  # 8 full blocks shared by two prompts
FIRST, SECOND = PREFIX + [11, 12, 13, 14, 15], PREFIX + [90, 91, 92]
OTHER = [(11 * i + 5) % 250 + 2 for i in range(40)]  # no block in common: evicts the prefix from the device
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=NEW, ignore_eos=True)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama")
    model = save_tiny(path, "llama", seed=0, max_positions=256)
    return path, {tuple(p): hf_greedy(model, p, NEW) for p in (FIRST, SECOND, OTHER)}


@pytest.fixture(scope="module")
def other_llama(tmp_path_factory):
    """Same shapes and config, other random weights."""
    path = tmp_path_factory.mktemp("other")
    save_tiny(path, "llama", seed=1, max_positions=256)
    return path


def small_llm(path, num_blocks=14, **kwargs) -> LLM:
    """A device cache of `num_blocks` pages of 4 tokens: one 48-token request evicts the others' blocks."""
    config = PipelineConfig.from_flat(
        model_path=str(path), devices="cpu", max_length=64, kv_cache_page_size=PAGE, **kwargs
    )
    return LLM.from_config(config, num_blocks=num_blocks)


def run_three(llm) -> list[list[int]]:
    return [llm.generate([p], GREEDY)[0].token_ids for p in (FIRST, OTHER, SECOND)]


@pytest.mark.parametrize("kv_format", ["float32", "float8_e4m3fn"])
def test_local_connector_reloads_evicted_prefix_with_same_tokens(llama, kv_format):
    path, ref = llama
    plain = run_three(small_llm(path, kv_cache_format=kv_format))
    with small_llm(path, kv_connector="local", kv_connector_config={"host_bytes": 2**20},
                   kv_cache_format=kv_format) as llm:
        assert [llm.generate([p], GREEDY)[0].token_ids for p in (FIRST, OTHER)] == plain[:2]
        stats = llm.kv_stats
        hits, cached = stats.hits, llm.scheduler.stats.num_prefix_cached_tokens
        assert stats.evictions > 0 and stats.connector_loads == 0
        third = llm.generate([SECOND], GREEDY)[0].token_ids
        assert third == plain[2]
        # The prefix came back from host memory, and the engine skipped exactly those tokens.
        assert stats.connector_loads > 0 and stats.connector_hits == stats.connector_loads * PAGE
        assert llm.scheduler.stats.num_prefix_cached_tokens - cached == stats.hits - hits == len(PREFIX)
    if kv_format == "float32":
        assert plain == [ref[tuple(p)] for p in (FIRST, OTHER, SECOND)]


def test_connector_blocks_of_other_weights_are_never_served(llama, other_llama, tmp_path):
    path, _ = llama
    settings = dict(kv_connector="tiered", kv_connector_config={"disk_dir": str(tmp_path), "host_bytes": 2**20})
    with small_llm(path, **settings) as llm:
        llm.generate([FIRST], GREEDY)
    assert any(tmp_path.rglob("*")), "the tiered connector wrote no block to disk"
    with small_llm(other_llama, **settings) as other:
        other.generate([SECOND], GREEDY)
        assert other.kv_stats.connector_loads == 0 and other.kv_stats.connector_hits == 0
    with small_llm(path, **settings) as again:
        again.generate([SECOND], GREEDY)
        assert again.kv_stats.connector_hits == len(PREFIX)


def fingerprint_of(path) -> str:
    return model_fingerprint(resolve_model_files(PipelineConfig.from_flat(model_path=str(path)).model))


def test_fingerprint_follows_weight_contents_not_location(llama, other_llama, tmp_path):
    path, _ = llama
    copy = shutil.copytree(path, tmp_path / "copy")
    assert fingerprint_of(copy) == fingerprint_of(path) != fingerprint_of(other_llama)


def test_connector_settings_errors_name_the_flag(llama):
    path, _ = llama
    with pytest.raises(ConfigError, match="--kv-connector-config: unknown key 'disk_dir' for local"):
        small_llm(path, kv_connector="local", kv_connector_config={"disk_dir": "/tmp"})
    with pytest.raises(ConfigError, match="--kv-connector dkv needs --enable-prefix-caching"):
        small_llm(path, kv_connector="dkv", enable_prefix_caching=False)


@pytest.mark.parametrize("page_size", [16, 1024])
def test_page_sizes_give_the_same_greedy_tokens(llama, page_size):
    path, ref = llama
    llm = LLM(model=str(path), devices="cpu", max_length=64, kv_cache_page_size=page_size)
    assert [o.token_ids for o in llm.generate([FIRST, OTHER], GREEDY)] == [ref[tuple(FIRST)], ref[tuple(OTHER)]]


# ---- dkv against a real redis-server ---------------------------------------------------------------

REDIS_SERVER = shutil.which("redis-server")


@pytest.fixture
def redis_url():
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not on PATH (install the redis-server package)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def test_dkv_shares_blocks_between_engines_through_redis(llama, other_llama, redis_url):
    path, ref = llama
    settings = dict(kv_connector="dkv", kv_connector_config={"url": redis_url, "timeout_s": 2.0})
    with small_llm(path, **settings) as first:
        assert first.generate([FIRST], GREEDY)[0].token_ids == ref[tuple(FIRST)]
        assert first.kv_stats.connector_saves > 0
    with small_llm(other_llama, **settings) as other:
        other.generate([SECOND], GREEDY)
        assert other.kv_stats.connector_loads == 0
    with small_llm(path, **settings) as second:  # a fresh device cache: the prefix comes from redis
        assert second.generate([SECOND], GREEDY)[0].token_ids == ref[tuple(SECOND)]
        assert second.kv_stats.connector_hits == len(PREFIX)
        assert second.kv_manager.connector.stats.errors == 0
