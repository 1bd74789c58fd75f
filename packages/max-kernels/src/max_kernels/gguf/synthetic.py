"""Random GGUF tensors with sane scales, for tests and benchmarks.

Every byte is random except the float16 scale fields, which get finite values of a typical size, so
all code paths (every nibble, sign and 6-bit scale) are exercised without infinities or NaNs.
"""

import numpy as np
import torch

from max_kernels.gguf.formats import BLOCK_GEOMETRY, FLOAT_TYPES, GGMLType, as_ggml_type, row_bytes

# Offsets of the float16 fields in each block, and the range of values they get.
_SCALE_FIELDS: dict[GGMLType, tuple[tuple[int, float, float], ...]] = {
    GGMLType.Q4_0: ((0, 1e-3, 5e-2),),
    GGMLType.Q4_1: ((0, 1e-3, 5e-2), (2, -0.5, 0.0)),
    GGMLType.Q8_0: ((0, 1e-4, 2e-3),),
    GGMLType.Q4_K: ((0, 1e-4, 2e-3), (2, 1e-4, 2e-3)),
    GGMLType.Q6_K: ((208, 1e-4, 2e-3),),
    GGMLType.Q5_0: ((0, 1e-3, 5e-2),),
    GGMLType.Q5_1: ((0, 1e-3, 5e-2), (2, -0.5, 0.0)),
    GGMLType.Q5_K: ((0, 1e-4, 2e-3), (2, 1e-4, 2e-3)),
    GGMLType.Q3_K: ((108, 1e-4, 2e-3),),
    GGMLType.Q2_K: ((80, 1e-4, 2e-3), (82, 1e-4, 2e-3)),
    GGMLType.IQ4_NL: ((0, 1e-4, 2e-3),),
    GGMLType.IQ4_XS: ((0, 1e-4, 2e-3),),
}


def random_blocks(qtype: "GGMLType | int | str", shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """uint8 [rows, row bytes] holding a random `qtype` tensor of logical `shape`."""
    qtype = as_ggml_type(qtype)
    rng = np.random.default_rng(seed)
    rows, cols = shape
    block_bytes = BLOCK_GEOMETRY[qtype][1]
    n_blocks = rows * row_bytes(qtype, cols) // block_bytes
    if qtype not in _SCALE_FIELDS:
        values = torch.from_numpy(rng.standard_normal(rows * cols).astype(np.float32))
        return values.to(FLOAT_TYPES[qtype]).view(torch.uint8).reshape(rows, -1)
    blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for offset, low, high in _SCALE_FIELDS[qtype]:
        scale = rng.uniform(low, high, size=n_blocks).astype(np.float16)
        blocks[:, offset : offset + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return torch.from_numpy(blocks).reshape(rows, -1)
