"""Runs one scheduled step: flat ragged batch in, one sampled token per finishing request out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from max_kernels import DecodePlan

from max_pipelines.engine.cpu_threads import StepThreads
from max_pipelines.engine.native_decode import NativeDecoder
from max_pipelines.engine.sampler import Sampler
from max_pipelines.engine.scheduler import ScheduledBatch
from max_pipelines.engine.sequence import Sequence
from max_pipelines.forward_context import AttentionMetadata, ForwardContext


@dataclass
class BatchInputs:
    input_ids: torch.Tensor  # [T]
    positions: torch.Tensor  # [T]
    attention: AttentionMetadata
    last_index: list[int]  # flat index of each request's last scheduled token


class ModelRunner:
    """Owns the model, its paged KV cache and the sampler.

    The batch is built on the host as flat tensors and copied to the device once; the only
    device-to-host transfer of a step is reading the sampled ids.
    """

    def __init__(self, model, kv_cache, kv_manager, page_size: int, device: torch.device, threads: StepThreads | None = None):
        self.model = model
        self.kv_cache = kv_cache
        self.kv = kv_manager
        self.page_size = page_size
        self.device = device
        self.sampler: Sampler | None = None
        self.threads = threads  # CPU only
        self.native: NativeDecoder | None = None  # CPU decode steps through the native library

    def prepare(self, batch: ScheduledBatch, native: bool = False) -> BatchInputs:
        """Flat inputs of `batch`, built from host lists with one tensor per field. A CPU decode-only
        step that the PyTorch attention runs also gets its DecodePlan (`native`: the library runs it)."""
        P = self.page_size
        ids, pos, slots, cu, seq_lens, block_ids = [], [], [], [0], [], []
        for seq, n in zip(batch.seqs, batch.num_new_tokens):
            start = seq.num_computed_tokens
            blocks = self.kv.block_ids(seq)
            block_ids.append(blocks)
            ids += seq.all_token_ids[start : start + n]
            pos += range(start, start + n)
            slots += [blocks[p // P] * P + p % P for p in range(start, start + n)]
            cu.append(cu[-1] + n)
            seq_lens.append(start + n)
        width = max(len(b) for b in block_ids)
        dev = self.device
        max_seqlen_q = max(batch.num_new_tokens)
        plan = None
        if max_seqlen_q == 1 and dev.type == "cpu" and not native:
            plan = DecodePlan.build(seq_lens, block_ids, P, dev)
        attention = AttentionMetadata(
            slot_mapping=torch.tensor(slots, dtype=torch.int64, device=dev),
            cu_seqlens_q=torch.tensor(cu, dtype=torch.int32, device=dev),
            seq_lens=torch.tensor(seq_lens, dtype=torch.int32, device=dev),
            block_tables=torch.tensor([b + [0] * (width - len(b)) for b in block_ids], dtype=torch.int32, device=dev),
            max_seqlen_q=max_seqlen_q,
            max_seqlen_k=max(seq_lens),
            slots_valid=True,
            decode_plan=plan,
        )
        return BatchInputs(
            input_ids=torch.tensor(ids, dtype=torch.int64, device=dev),
            positions=torch.tensor(pos, dtype=torch.int64, device=dev),
            attention=attention,
            last_index=[c - 1 for c in cu[1:]],
        )

    @torch.inference_mode()
    def run(self, batch: ScheduledBatch) -> dict[Sequence, int]:
        if self.threads is None:
            return self._run(batch)
        self.threads.enter(sum(batch.num_new_tokens))
        try:
            return self._run(batch)
        finally:
            self.threads.leave()

    def _run(self, batch: ScheduledBatch) -> dict[Sequence, int]:
        native = self.native is not None and max(batch.num_new_tokens) == 1 and len(batch) <= self.native.max_batch
        inputs = self.prepare(batch, native)
        md = inputs.attention
        if native:
            hidden = self.native.hidden(inputs.input_ids, md)
        else:
            hidden = self.model(inputs.input_ids, inputs.positions, ForwardContext(md, self.kv_cache))
        self._record_prompt_logprobs(batch, inputs, hidden)
        rows = [i for i in range(len(batch)) if batch.samples(i)]
        if not rows:
            return {}
        seqs = [batch.seqs[i] for i in rows]
        index = torch.tensor([inputs.last_index[i] for i in rows], device=self.device)
        if self.threads is not None:
            self.threads.enter_logits()
        if native:
            logits = self.native.logits(hidden[index])
        else:
            logits = self.model.compute_logits(hidden[index])
        if self.sampler is None:
            self.sampler = Sampler(logits.shape[1], self.device)
        token_ids = self.sampler(logits, seqs).tolist()
        self.sampler.record(seqs, token_ids)
        return dict(zip(seqs, token_ids))

    def _record_prompt_logprobs(self, batch: ScheduledBatch, inputs: BatchInputs, hidden: torch.Tensor) -> None:
        """For echo: log p(prompt[j + 1] | prompt[: j + 1]) for every prompt position computed this step."""
        start_flat = 0
        for seq, n in zip(batch.seqs, batch.num_new_tokens):
            first = seq.num_computed_tokens
            done = seq.prompt_logprobs
            # Positions first .. first + n - 1 predict tokens first + 1 .. first + n (prompt tokens only).
            end = min(first + n, seq.num_prompt_tokens - 1)
            if done is not None and len(done) == first and end > first:
                rows = hidden[start_flat : start_flat + end - first]
                logprobs = torch.log_softmax(self.model.compute_logits(rows).float(), dim=-1)
                targets = torch.tensor(seq.all_token_ids[first + 1 : end + 1], device=self.device)
                done.extend(logprobs.gather(1, targets[:, None])[:, 0].tolist())
            start_flat += n
