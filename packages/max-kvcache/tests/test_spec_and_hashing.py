import hashlib
from array import array

import pytest
import torch

from max_kvcache import NONE_HASH, KVCacheSpec, hash_block_tokens, hash_request_blocks


def test_bytes_per_block_counts_keys_values_and_fp8_scales():
    spec = KVCacheSpec(num_layers=3, num_kv_heads=2, head_dim=8, page_size=4, dtype="bfloat16")
    assert spec.bytes_per_block == 3 * 2 * 4 * 2 * 8 * 2
    fp8 = KVCacheSpec(num_layers=3, num_kv_heads=2, head_dim=8, page_size=4, dtype=torch.float8_e4m3fn)
    assert fp8.bytes_per_block == 3 * 2 * 4 * 2 * 8 * 1
    assert fp8.packed_block_bytes == fp8.bytes_per_block + 3 * 2 * 4 and spec.packed_block_bytes == spec.bytes_per_block
    assert fp8.format == "float8_e4m3fn" and fp8.is_fp8


@pytest.mark.parametrize("page", [0, 3, 100, 2048])
def test_page_size_must_be_power_of_two_up_to_1024(page):
    with pytest.raises(ValueError, match="--kv-cache-page-size"):
        KVCacheSpec(1, 1, 8, page_size=page)


def test_unknown_format_names_the_flag():
    with pytest.raises(ValueError, match="--kv-cache-format"):
        KVCacheSpec(1, 1, 8, dtype="int8")


def test_block_hash_matches_an_independent_blake2b():
    tokens = [1, 2, 3, 70000]
    expected = hashlib.blake2b(bytes(16), digest_size=16)
    expected.update(array("q", tokens).tobytes())
    assert hash_block_tokens(NONE_HASH, tokens) == expected.digest()


def test_chain_covers_full_blocks_only_and_reuses_known_hashes():
    tokens = list(range(11))
    hashes = hash_request_blocks(tokens, 4)
    assert len(hashes) == 2
    assert hashes[1] == hash_block_tokens(hash_block_tokens(NONE_HASH, tokens[:4]), tokens[4:8])
    assert hash_request_blocks(tokens + [11], 4, known=hashes[:1]) == hash_request_blocks(tokens + [11], 4)


def test_extra_keys_and_parents_separate_hashes():
    tokens = list(range(8))
    plain = hash_request_blocks(tokens, 4)
    for keys in [("adapter-a",), (None, "salt"), (("img", b"\x01"),)]:
        keyed = hash_request_blocks(tokens, 4, keys)
        assert keyed[0] != plain[0] and keyed[1] != plain[1]
    assert hash_request_blocks(tokens, 4, ("a",)) != hash_request_blocks(tokens, 4, ("b",))
    # the second block's tokens alone are not enough: its parent differs
    assert hash_request_blocks([9, 9, 9, 9] + tokens[4:], 4)[1] != plain[1]
