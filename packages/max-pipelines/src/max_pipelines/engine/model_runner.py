"""Runs one scheduled step: flat ragged batch in, one sampled token per finishing request out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from max_kernels import DecodePlan
from max_kernels.cpu import NativeDecodeStep

from max_pipelines.engine.cpu_threads import StepThreads
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
        self.native: NativeDecodeStep | None = None  # CPU decode steps through the native library

    def prepare(self, batch: ScheduledBatch) -> BatchInputs:
        P = self.page_size
        ids, pos, slots, tables, cu, seq_lens, block_ids = [], [], [], [], [0], [], []
        for seq, n in zip(batch.seqs, batch.num_new_tokens):
            start = seq.num_computed_tokens
            block_ids.append(self.kv.block_ids(seq))
            blocks = torch.tensor(block_ids[-1], dtype=torch.int64)
            p = torch.arange(start, start + n)
            ids += seq.all_token_ids[start : start + n]
            pos.append(p)
            slots.append(blocks[p // P] * P + p % P)
            tables.append(blocks)
            cu.append(cu[-1] + n)
            seq_lens.append(start + n)
        table = torch.zeros(len(tables), max(len(t) for t in tables), dtype=torch.int32)
        for i, t in enumerate(tables):
            table[i, : len(t)] = t
        dev = self.device
        max_seqlen_q = max(batch.num_new_tokens)
        plan = None
        if max_seqlen_q == 1 and dev.type == "cpu":
            plan = DecodePlan.build(seq_lens, block_ids, P, dev)
        attention = AttentionMetadata(
            slot_mapping=torch.cat(slots).to(dev),
            cu_seqlens_q=torch.tensor(cu, dtype=torch.int32, device=dev),
            seq_lens=torch.tensor(seq_lens, dtype=torch.int32, device=dev),
            block_tables=table.to(dev),
            max_seqlen_q=max_seqlen_q,
            max_seqlen_k=max(seq_lens),
            slots_valid=True,
            decode_plan=plan,
        )
        return BatchInputs(
            input_ids=torch.tensor(ids, dtype=torch.int64, device=dev),
            positions=torch.cat(pos).to(dev),
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
        inputs = self.prepare(batch)
        md = inputs.attention
        native = self.native is not None and md.max_seqlen_q == 1 and len(batch) <= self.native.max_batch
        if native:
            embeddings = self.model.model.embed_tokens(inputs.input_ids)
            hidden = self.native.layers(embeddings, md.seq_lens, md.slot_mapping, md.block_tables)
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
            last = hidden[index]
            logits = self.model.lm_head.refine(self.native.logits(last), last)
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
