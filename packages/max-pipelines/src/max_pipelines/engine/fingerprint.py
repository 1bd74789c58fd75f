"""A model fingerprint for KV connectors: what identifies the weights, read in milliseconds.

Blocks in an external KV tier are keyed by this fingerprint, so a tier shared by processes (a disk
directory, a redis server) serves a block only to a model that would have computed the same one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from max_config.model_files import ModelFiles

HEAD_BYTES = 1 << 16  # the header of a safetensors or GGUF file: tensor names, shapes, metadata
NUM_SAMPLES = 64  # evenly spaced reads over the tensor data, so two checkpoints of one shape differ
SAMPLE_BYTES = 4096


def _file_digest(path: Path, digest) -> None:
    """Fold the file's size, header and a fixed set of sampled chunks into `digest`.

    Never the whole file: startup stays fast for checkpoints of any size. The path and times are
    left out, so the same weights copied elsewhere (another folder, another host) share blocks.
    """
    size = path.stat().st_size
    digest.update(f"{size}|".encode())
    with path.open("rb") as f:
        digest.update(f.read(HEAD_BYTES))
        rest = size - HEAD_BYTES
        if rest <= 0:
            return
        stride = max(rest // NUM_SAMPLES, SAMPLE_BYTES)
        for offset in range(HEAD_BYTES, size, stride):
            f.seek(offset)
            digest.update(f.read(SAMPLE_BYTES))
        f.seek(max(size - SAMPLE_BYTES, HEAD_BYTES))
        digest.update(f.read(SAMPLE_BYTES))


def model_fingerprint(files: ModelFiles) -> str:
    """Hex digest of the weight files (size, header, sampled data), the encoding they run as and the
    model config (architecture, layer and head shapes, rope settings)."""
    digest = hashlib.blake2b(digest_size=16)
    config = json.dumps(files.config, sort_keys=True, default=str)
    digest.update(f"{files.architecture}|{files.encoding.value}|{files.file_encoding.value}|{config}|".encode())
    for path in files.weight_files:
        _file_digest(path, digest)
    return digest.hexdigest()
