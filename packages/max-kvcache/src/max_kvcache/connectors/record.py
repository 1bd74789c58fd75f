"""The self-checking byte format of one block outside the device: files on disk, values in a shared store.

Layout: magic (8) | namespace (16) | block hash (16) | payload length (8, little endian) | payload |
xxh3-64 of everything before it (8).
The namespace binds the record to one model and KV format; the length and checksum catch truncation
and corruption. A record that fails any check is never served.
"""

from __future__ import annotations

from typing import BinaryIO

import xxhash

MAGIC = b"MAXKVB02"
_HEADER = len(MAGIC) + 16 + 16 + 8
_TRAILER = 8
RECORD_OVERHEAD = _HEADER + _TRAILER


class CorruptBlockError(ValueError):
    """A stored block that is truncated, damaged or belongs to another model or format."""


def encode_block(namespace: bytes, block_hash: bytes, payload: bytes | memoryview) -> bytes:
    header = MAGIC + namespace + block_hash + len(payload).to_bytes(8, "little")
    return b"".join((header, payload, _checksum(header, payload)))


def _checksum(header: bytes | memoryview, payload: bytes | memoryview) -> bytes:
    h = xxhash.xxh3_64(header)
    h.update(payload)
    return h.digest()


def _check_header(header: bytes | memoryview, namespace: bytes, block_hash: bytes, payload_len: int) -> None:
    if len(header) != _HEADER or header[: len(MAGIC)] != MAGIC:
        raise CorruptBlockError("not a KV block record")
    if header[len(MAGIC) : len(MAGIC) + 16] != namespace:
        raise CorruptBlockError("written for another model or KV format")
    if header[len(MAGIC) + 16 : len(MAGIC) + 32] != block_hash:
        raise CorruptBlockError("holds another block")
    if int.from_bytes(header[len(MAGIC) + 32 :], "little") != payload_len:
        raise CorruptBlockError("payload of another size")


def decode_block(record: bytes | memoryview, namespace: bytes, block_hash: bytes, payload_len: int) -> memoryview:
    """The payload of `record` after every check, or CorruptBlockError naming the failed one."""
    view = memoryview(record)
    if len(view) != _HEADER + payload_len + _TRAILER:
        raise CorruptBlockError(f"size {len(view)}, expected {_HEADER + payload_len + _TRAILER}")
    _check_header(view[:_HEADER], namespace, block_hash, payload_len)
    payload = view[_HEADER:-_TRAILER]
    if _checksum(view[:_HEADER], payload) != view[-_TRAILER:]:
        raise CorruptBlockError("checksum mismatch")
    return payload


def read_block_into(f: BinaryIO, namespace: bytes, block_hash: bytes, out: memoryview) -> None:
    """Read one record from `f` straight into `out` (the payload's size), checking it as `decode_block` does."""
    header = f.read(_HEADER)
    _check_header(header, namespace, block_hash, len(out))
    if f.readinto(out) != len(out):
        raise CorruptBlockError("truncated payload")
    trailer = f.read(_TRAILER + 1)
    if len(trailer) != _TRAILER:
        raise CorruptBlockError("truncated or overlong record")
    if _checksum(header, out) != trailer:
        raise CorruptBlockError("checksum mismatch")
