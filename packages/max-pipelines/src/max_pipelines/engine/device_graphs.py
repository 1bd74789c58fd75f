"""Device graphs (`--device-graph-capture`): decode steps replayed from captured CUDA graphs.

A decode step of `b` requests runs the graph captured for the smallest size `n >= b` (1, 2, 4, 8,
then multiples of 16 up to the engine's batch limit, at most 256). The graph reads static buffers:
the step's inputs are copied into rows `:b`, and rows `b:n` are padding that writes no KV (slot
-1) and attends to one position of block 0. Block tables are padded to the longest request the
engine admits, so the attention kernels launch the same grid whatever the lengths. The graph holds
the whole forward pass and the LM head; sampling stays outside (its parameters vary per request).
With `--debug-verify-replay` the first replay of each size is checked against the same step run
eagerly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from max_kernels.dispatch import graph_step
from tqdm.auto import tqdm

from max_pipelines.forward_context import AttentionMetadata, ForwardContext

MAX_CAPTURE_SIZE = 256


class Replay(Protocol):
    def replay(self) -> None: ...


Capture = Callable[[Callable[[], torch.Tensor]], tuple[Replay, torch.Tensor]]


def capture_sizes(max_batch: int) -> list[int]:
    """The batch sizes that get a graph: 1, 2, 4, 8, 16, 32, ... multiples of 16, and the limit."""
    top = min(max_batch, MAX_CAPTURE_SIZE)
    base = [1, 2, 4, 8, *range(16, top + 1, 16)]
    return sorted({s for s in base if s < top} | {top})


class CUDAGraphCapture:
    """Captures a step into a CUDA graph sharing one memory pool with the engine's other graphs."""

    def __init__(self):
        self.pool = torch.cuda.graph_pool_handle()

    def __call__(self, step: Callable[[], torch.Tensor]) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # compiles and tunes every kernel before capture
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = step()
        return graph, out


class DecodeGraphs:
    """Static inputs and one captured decode step per batch size; `logits` runs a step."""

    def __init__(
        self,
        model,
        kv_cache,
        max_batch: int,
        max_length: int,
        page_size: int,
        device: torch.device,
        verify: bool = False,
        capture: Capture | None = None,
    ):
        self.model, self.kv_cache, self.verify = model, kv_cache, verify
        self.sizes = capture_sizes(max_batch)
        self.max_batch = self.sizes[-1]
        self.max_length = max_length
        n, width = self.max_batch, -(-max_length // page_size)
        self.input_ids = torch.zeros(n, dtype=torch.int64, device=device)
        self.positions = torch.zeros(n, dtype=torch.int64, device=device)
        self.slot_mapping = torch.full((n,), -1, dtype=torch.int64, device=device)
        self.seq_lens = torch.ones(n, dtype=torch.int32, device=device)
        self.block_tables = torch.zeros(n, width, dtype=torch.int32, device=device)
        self.cu_seqlens_q = torch.arange(n + 1, dtype=torch.int32, device=device)
        self._capture = capture or CUDAGraphCapture()
        self._graphs: dict[int, tuple[Replay, torch.Tensor]] = {}
        self._verified: set[int] = set()

    @torch.inference_mode()
    def capture_all(self) -> None:
        """Capture every size, largest first (the smaller graphs reuse its memory)."""
        for n in tqdm(sorted(self.sizes, reverse=True), desc="Capturing device graphs", unit="graph", leave=False, disable=None):
            self._capture_size(n)

    def _capture_size(self, n: int) -> None:
        with graph_step():
            self._graphs[n] = self._capture(self._step_fn(n))

    def _step_fn(self, n: int) -> Callable[[], torch.Tensor]:
        md = AttentionMetadata(
            slot_mapping=self.slot_mapping[:n],
            cu_seqlens_q=self.cu_seqlens_q[: n + 1],
            seq_lens=self.seq_lens[:n],
            block_tables=self.block_tables[:n],
            max_seqlen_q=1,
            max_seqlen_k=self.max_length,
        )
        ctx = ForwardContext(md, self.kv_cache)
        model = self.model

        def step() -> torch.Tensor:
            return model.compute_logits(model(self.input_ids[:n], self.positions[:n], ctx))

        return step

    def fits(self, num_requests: int) -> bool:
        return num_requests <= self.max_batch

    def logits(self, input_ids: torch.Tensor, positions: torch.Tensor, md: AttentionMetadata) -> torch.Tensor:
        """Float32 logits `[b, V]` of a decode step of `b <= max_batch` requests (one token each)."""
        b = input_ids.shape[0]
        n = next(s for s in self.sizes if s >= b)
        self.input_ids[:b].copy_(input_ids)
        self.positions[:b].copy_(positions)
        self.slot_mapping[:b].copy_(md.slot_mapping)
        self.seq_lens[:b].copy_(md.seq_lens)
        self.block_tables[:b, : md.block_tables.shape[1]].copy_(md.block_tables)
        if n > b:  # padding rows: no KV written, one position attended
            self.slot_mapping[b:n].fill_(-1)
            self.seq_lens[b:n].fill_(1)
            self.block_tables[b:n, 0].zero_()
        if n not in self._graphs:
            self._capture_size(n)
        graph, out = self._graphs[n]
        graph.replay()
        if self.verify and n not in self._verified:
            self._check_replay(n, out)
        return out[:b]

    def _check_replay(self, n: int, out: torch.Tensor) -> None:
        """`--debug-verify-replay`: the replayed logits against the same step run eagerly (it
        rewrites the same KV entries with the same values)."""
        with graph_step():  # the kernels the graph holds
            eager = self._step_fn(n)()
        err = (out - eager).abs().max().item()
        tol = 1e-3 * max(eager.abs().max().item(), 1.0)
        if not err <= tol:
            raise RuntimeError(
                f"--debug-verify-replay: the device graph for batch size {n} gives logits {err:.3g} away from "
                "the eager step; run without --device-graph-capture"
            )
        self._verified.add(n)
