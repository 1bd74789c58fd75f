"""A separate process using a shared tiered directory: prefill a prompt of `range(NUM_TOKENS)`,
checking that every block loaded from the directory holds exactly what a model would have written.

Run as `python tiered_worker.py DIR FINGERPRINT NUM_TOKENS`; prints `hit=<tokens> ok=<bool> corrupt=<n>`.
"""

import hashlib
import sys

import torch

from max_kvcache import KVCacheManager, KVCacheSpec, PagedKVCache, build_slot_mapping
from max_kvcache.connectors import create_connector

SPEC = KVCacheSpec(num_layers=2, num_kv_heads=2, head_dim=8, page_size=4, dtype="float32")


def model_kv(tokens, pos):
    seed = int.from_bytes(hashlib.sha256(repr(tokens[: pos + 1]).encode()).digest()[:8], "little")
    return torch.randn(2, SPEC.num_kv_heads, SPEC.head_dim, generator=torch.Generator().manual_seed(seed))


class Request:
    def __init__(self, tokens):
        self.request_id, self.all_token_ids, self.extra_keys = "r", tokens, ()
        self.num_prompt_tokens, self.num_computed_tokens = len(tokens), 0


def main(directory, fingerprint, num_tokens):
    connector = create_connector("tiered", {"disk_dir": directory, "host_bytes": 2**20}, SPEC, fingerprint)
    manager = KVCacheManager(PagedKVCache(SPEC, 32), connector=connector)
    req = Request(list(range(num_tokens)))
    hit = manager.get_computed_tokens(req)
    req.num_computed_tokens = hit
    assert manager.allocate_slots(req, num_tokens - hit)
    ids = manager.block_ids(req)
    expected = torch.stack([model_kv(req.all_token_ids, p) for p in range(num_tokens)])
    k, v = manager.kv_cache.gather_tokens(1, ids, hit)  # whatever was loaded must be exact
    ok = torch.equal(k, expected[:hit, 0]) and torch.equal(v, expected[:hit, 1])
    slots = build_slot_mapping([ids], [hit], [num_tokens - hit], SPEC.page_size)
    for layer in range(SPEC.num_layers):
        manager.kv_cache.store(layer, expected[hit:, 0], expected[hit:, 1], slots)
    manager.free(req)
    connector.close()
    print(f"hit={hit} ok={ok} corrupt={connector.stats.corrupt}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
