"""KV cache benchmark: block allocation, block hashing, and the disk tier against a raw file read.

Printed: allocation ops/s (admit, decode steps, free), hashing tokens/s and its ratio to raw
blake2b over the same bytes, and disk-tier load throughput with its ratio to reading the same
files with plain `open().read()` (the checksum, header checks and copy into the device cache are
the difference). Runs on the CPU unless `--device cuda`.

    uv run python tools/bench_kvcache.py
    uv run python tools/bench_kvcache.py --smoke      # a few seconds, tiny sizes
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import torch

from max_kvcache import KVCacheManager, KVCacheSpec, PagedKVCache, hash_request_blocks
from max_kvcache.connectors import create_connector


@dataclass
class Request:
    request_id: str
    all_token_ids: list[int]
    num_prompt_tokens: int
    num_computed_tokens: int = 0
    extra_keys: tuple = field(default_factory=tuple)


def best_of(fn, repeats: int) -> float:
    """The fastest of `repeats` timed runs, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_allocation(num_requests: int, prompt_len: int, decode_steps: int, page: int) -> dict:
    """Admit requests sharing a system prompt, decode each a few steps, free them; ops = manager calls."""
    spec = KVCacheSpec(num_layers=1, num_kv_heads=1, head_dim=8, page_size=page)
    blocks = num_requests * ((prompt_len + decode_steps) // page + 2) + 1
    shared = list(range(prompt_len // 2))

    def run() -> int:
        manager = KVCacheManager(spec, num_blocks=blocks)
        reqs = [Request(f"r{i}", shared + [i] * (prompt_len - len(shared)), prompt_len) for i in range(num_requests)]
        ops = 0
        for req in reqs:
            req.num_computed_tokens = manager.get_computed_tokens(req)
            assert manager.allocate_slots(req, prompt_len - req.num_computed_tokens)
            req.num_computed_tokens = prompt_len
            ops += 2
        for step in range(decode_steps):
            for req in reqs:
                req.all_token_ids.append(step)
                assert manager.allocate_slots(req, 1)
                req.num_computed_tokens += 1
                ops += 1
        for req in reqs:
            manager.free(req)
            ops += 1
        return ops

    ops = run()
    seconds = best_of(run, 3)
    return {"ops": ops, "ops_per_s": ops / seconds}


def bench_hashing(num_tokens: int, page: int) -> dict:
    tokens = list(range(num_tokens))
    ours = best_of(lambda: hash_request_blocks(tokens, page), 3)
    raw_bytes = array("q", tokens).tobytes()
    raw = best_of(lambda: hashlib.blake2b(raw_bytes, digest_size=16).digest(), 3)
    return {"tokens_per_s": num_tokens / ours, "raw_tokens_per_s": num_tokens / raw}


def bench_disk(spec: KVCacheSpec, num_blocks: int) -> dict:
    """Save `num_blocks` through the tiered connector, then load them with an empty host tier."""
    with tempfile.TemporaryDirectory(prefix="bench_kv_") as directory:
        cache = PagedKVCache(spec, num_blocks + 1)
        for layer in range(spec.num_layers):
            cache.k_caches[layer].copy_(torch.randn(cache.k_caches[layer].shape).to(spec.dtype))
            cache.v_caches[layer].copy_(torch.randn(cache.v_caches[layer].shape).to(spec.dtype))
        hashes = hash_request_blocks(list(range(num_blocks * spec.page_size)), spec.page_size)
        ids = list(range(1, num_blocks + 1))
        config = {"disk_dir": directory, "host_bytes": spec.packed_block_bytes}
        writer = create_connector("tiered", config, spec, "bench")
        writer.save(hashes, ids, cache)
        writer.close()
        files = sorted(Path(directory).rglob("*.kvb"))
        total = sum(f.stat().st_size for f in files)

        # host tier of one block: every load but the last block's comes from disk
        reader = create_connector("tiered", config, spec, "bench")

        def load() -> None:
            assert reader.load(hashes, ids, cache) == num_blocks
            if spec.device.type == "cuda":
                torch.cuda.synchronize()

        def raw_read() -> None:
            for f in files:
                with open(f, "rb") as handle:
                    handle.read()

        load()  # warm the page cache and the reader's staging buffer
        result = {"bytes": total, "load_s": best_of(load, 3), "raw_s": best_of(raw_read, 3)}
        reader.close()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 avoids spin-waits on a busy host)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    small = args.smoke
    alloc = bench_allocation(64 if small else 512, 512, 16 if small else 64, 16)
    print(f"allocation: {alloc['ops_per_s']:,.0f} manager ops/s ({alloc['ops']} ops per run)")
    for page in (16, 128):
        h = bench_hashing(50_000 if small else 1_000_000, page)
        ratio = h["tokens_per_s"] / h["raw_tokens_per_s"]
        print(f"hashing, page {page}: {h['tokens_per_s'] / 1e6:.1f} M tokens/s ({ratio:.2f}x raw blake2b)")
    spec = KVCacheSpec(
        num_layers=4 if small else 16, num_kv_heads=4, head_dim=64, page_size=64, dtype="bfloat16", device=args.device
    )
    d = bench_disk(spec, 8 if small else 64)
    gb = d["bytes"] / 1e9
    print(
        f"disk tier load: {gb / d['load_s']:.2f} GB/s vs raw read {gb / d['raw_s']:.2f} GB/s "
        f"({d['raw_s'] / d['load_s']:.2f}x), {d['bytes'] / 2**20:.0f} MiB in {spec.packed_block_bytes // 1024} KiB blocks"
    )


if __name__ == "__main__":
    main()
