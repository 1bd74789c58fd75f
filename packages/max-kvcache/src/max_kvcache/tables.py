"""Batch tensors built from block ids: block tables and slot mappings."""

from __future__ import annotations

import torch

from max_kvcache.paged_cache import NULL_BLOCK_ID


def build_block_tables(
    block_ids: list[list[int]], width: int | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """`block_tables[B, M]` int32, each row padded with the null block to `width` (default: the longest row)."""
    width = max((len(row) for row in block_ids), default=0) if width is None else width
    rows = [row + [NULL_BLOCK_ID] * (width - len(row)) for row in block_ids]
    if any(len(row) > width for row in rows):
        raise ValueError(f"a request holds more than {width} blocks")
    return torch.tensor(rows, dtype=torch.int32).reshape(len(rows), width).to(device)


def build_slot_mapping(
    block_ids: list[list[int]],
    starts: list[int],
    counts: list[int],
    page_size: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """`slot_mapping[T]` int64 for request `i`'s tokens at positions `starts[i] : starts[i] + counts[i]`.

    Slot = block_id * page_size + offset within the block.
    """
    slots: list[int] = []
    for row, start, count in zip(block_ids, starts, counts, strict=True):
        for pos in range(start, start + count):
            slots.append(row[pos // page_size] * page_size + pos % page_size)
    return torch.tensor(slots, dtype=torch.int64).to(device)
