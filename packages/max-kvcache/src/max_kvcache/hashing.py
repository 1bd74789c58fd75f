"""Chained block hashes for prefix caching.

A full block's hash is `blake2b(parent hash, token ids, extra keys)`: stable across processes and
machines (no Python `hash`), so disk and shared tiers can key on it. Extra keys (adapter name, image
hashes, cache salt) enter the first block only; the chain carries them to every later block.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from typing import NewType

BlockHash = NewType("BlockHash", bytes)

HASH_BYTES = 16
NONE_HASH = BlockHash(bytes(HASH_BYTES))


def _pack_key(key: object) -> bytes:
    """A type-tagged, length-prefixed encoding, so that distinct keys never pack alike."""
    if key is None:
        return b"n"
    if isinstance(key, bool):
        return b"t" if key else b"f"
    if isinstance(key, int):
        raw = str(key).encode()
        tag = b"i"
    elif isinstance(key, str):
        raw = key.encode()
        tag = b"s"
    elif isinstance(key, bytes):
        raw = key
        tag = b"b"
    elif isinstance(key, (tuple, list)):
        raw = b"".join(_pack_key(k) for k in key)
        tag = b"("
    else:
        raise TypeError(f"block hash extra keys must be str, bytes, int, None or tuples of them, got {type(key)}")
    return tag + len(raw).to_bytes(8, "little") + raw


def hash_block_tokens(parent: BlockHash, token_ids: Sequence[int], extra_keys: tuple = ()) -> BlockHash:
    """The hash of one full block, chained to its parent's."""
    h = hashlib.blake2b(parent, digest_size=HASH_BYTES)
    h.update(array("q", token_ids).tobytes())
    if extra_keys:
        h.update(_pack_key(tuple(extra_keys)))
    return BlockHash(h.digest())


def hash_request_blocks(
    token_ids: Sequence[int], page_size: int, extra_keys: tuple = (), known: Sequence[BlockHash] = ()
) -> list[BlockHash]:
    """Hashes of every full block of `token_ids`, reusing the already known leading ones."""
    hashes = list(known)
    first = len(hashes) * page_size
    end = len(token_ids) // page_size * page_size
    if end <= first:
        return hashes
    packed = memoryview(array("q", token_ids[first:end]).tobytes())
    step = page_size * packed.itemsize * 8
    parent = hashes[-1] if hashes else NONE_HASH
    for offset in range(0, len(packed), step):
        h = hashlib.blake2b(parent, digest_size=HASH_BYTES)
        h.update(packed[offset : offset + step])
        if extra_keys and first + offset == 0:
            h.update(_pack_key(tuple(extra_keys)))
        parent = BlockHash(h.digest())
        hashes.append(parent)
    return hashes
