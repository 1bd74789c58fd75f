"""The self-checking byte format of one block outside the device: files on disk, values in a shared store.

Layout: magic (8) | namespace (16) | block hash (16) | payload length (8, little endian) | payload | crc32 (4).
The namespace binds the record to one model and KV format; the length and checksum catch truncation
and corruption. A record that fails any check is never served.
"""

from __future__ import annotations

import zlib

MAGIC = b"MAXKVB01"
_HEADER = len(MAGIC) + 16 + 16 + 8
_TRAILER = 4


class CorruptBlockError(ValueError):
    """A stored block that is truncated, damaged or belongs to another model or format."""


def encode_block(namespace: bytes, block_hash: bytes, payload: bytes | memoryview) -> bytes:
    header = MAGIC + namespace + block_hash + len(payload).to_bytes(8, "little")
    crc = zlib.crc32(payload, zlib.crc32(header))
    return b"".join((header, payload, crc.to_bytes(4, "little")))


def decode_block(record: bytes | memoryview, namespace: bytes, block_hash: bytes, payload_len: int) -> memoryview:
    """The payload of `record` after every check, or CorruptBlockError naming the failed one."""
    view = memoryview(record)
    if len(view) != _HEADER + payload_len + _TRAILER:
        raise CorruptBlockError(f"size {len(view)}, expected {_HEADER + payload_len + _TRAILER}")
    if view[: len(MAGIC)] != MAGIC:
        raise CorruptBlockError("not a KV block record")
    if view[len(MAGIC) : len(MAGIC) + 16] != namespace:
        raise CorruptBlockError("written for another model or KV format")
    if view[len(MAGIC) + 16 : len(MAGIC) + 32] != block_hash:
        raise CorruptBlockError("holds another block")
    body = view[:-_TRAILER]
    if zlib.crc32(body).to_bytes(4, "little") != view[-_TRAILER:]:
        raise CorruptBlockError("checksum mismatch")
    return body[_HEADER:]
