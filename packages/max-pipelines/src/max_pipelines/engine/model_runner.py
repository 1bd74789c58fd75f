"""Runs one scheduled step: flat ragged batch in, one sampled token per finishing request out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from max_kernels import DecodePlan

from max_pipelines.engine.cpu_threads import StepThreads
from max_pipelines.engine.device_graphs import DecodeGraphs
from max_pipelines.engine.native_decode import NativeDecoder
from max_pipelines.engine.sampler import Sampler
from max_pipelines.engine.scheduler import ScheduledBatch
from max_pipelines.engine.sequence import Sequence
from max_pipelines.engine.transfer import HostCopy, to_device
from max_pipelines.forward_context import AttentionMetadata, ForwardContext
from max_pipelines.layers.rotary import longrope_threshold


@dataclass
class DecodeLaunch:
    """A decode step in flight: its requests and their sampled tokens (device, and host once copied)."""

    seqs: list[Sequence]
    tokens: torch.Tensor
    host: HostCopy


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
        self.graphs: DecodeGraphs | None = None  # GPU decode steps replayed from device graphs
        # longrope: past this length every token takes the long factors; prefill steps then pass the
        # requests' known lengths (and LLM keys the prefix cache of such prompts apart)
        self.long_rope_from = longrope_threshold(model)

    def prepare(
        self, batch: ScheduledBatch, native: bool = False, lag: int = 0, input_ids: torch.Tensor | None = None
    ) -> BatchInputs:
        """Flat inputs of `batch`, built from host lists with one tensor per field. A CPU decode-only
        step that the PyTorch attention runs also gets its DecodePlan (`native`: the library runs it).

        `lag`: steps launched for these requests whose tokens the host has not appended yet; their
        positions start that much later and `input_ids` (on the device) holds the tokens to feed.
        """
        P = self.page_size
        ids, pos, slots, cu, seq_lens, block_ids = [], [], [], [0], [], []
        for seq, n in zip(batch.seqs, batch.num_new_tokens):
            start = seq.num_computed_tokens + lag
            blocks = self.kv.block_ids(seq)
            block_ids.append(blocks)
            if input_ids is None:
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
            slot_mapping=to_device(slots, dev, torch.int64),
            cu_seqlens_q=to_device(cu, dev, torch.int32),
            seq_lens=to_device(seq_lens, dev, torch.int32),
            block_tables=to_device([b + [0] * (width - len(b)) for b in block_ids], dev, torch.int32),
            max_seqlen_q=max_seqlen_q,
            max_seqlen_k=max(seq_lens),
            slots_valid=True,
            decode_plan=plan,
            known_lens=(
                to_device([len(s.all_token_ids) for s in batch.seqs], dev, torch.int32)
                if self.long_rope_from is not None and max_seqlen_q > 1
                else None
            ),
        )
        return BatchInputs(
            input_ids=to_device(ids, dev, torch.int64) if input_ids is None else input_ids,
            positions=to_device(pos, dev, torch.int64),
            attention=attention,
            last_index=[c - 1 for c in cu[1:]],
        )

    @torch.inference_mode()
    def run(self, batch: ScheduledBatch) -> dict[Sequence, int]:
        """One step, synchronously: the sampled token of each request that reached its last token."""
        seqs, tokens = self._step_in_threads(batch)
        if not seqs:
            return {}
        token_ids = tokens.tolist()
        self.sampler.record(seqs, token_ids)
        return dict(zip(seqs, token_ids))

    @torch.inference_mode()
    def launch_decode(self, seqs: list[Sequence], input_ids: torch.Tensor | None, lag: int) -> DecodeLaunch:
        """Queue one decode step of `seqs` without waiting for its tokens (the overlap scheduler).

        `input_ids` (device) are the tokens sampled by the step still in flight, `lag` = 1, or None
        with `lag` = 0 when the host holds every token. The requests must not use penalties or logprobs
        (they need the tokens on the host); their seeded draws are keyed one token later by `lag`.
        """
        batch = ScheduledBatch(seqs=list(seqs), num_new_tokens=[1] * len(seqs))
        _, tokens = self._step_in_threads(batch, lag, input_ids)
        return DecodeLaunch(batch.seqs, tokens, HostCopy(tokens))

    def _step_in_threads(
        self, batch: ScheduledBatch, lag: int = 0, input_ids: torch.Tensor | None = None
    ) -> tuple[list[Sequence], torch.Tensor | None]:
        """`_step` under the CPU thread arm chosen for its size (see `StepThreads`), where there is one."""
        if self.threads is None:
            return self._step(batch, lag, input_ids)
        self.threads.enter(batch.num_tokens)
        try:
            return self._step(batch, lag, input_ids)
        finally:
            self.threads.leave()

    def _step(
        self, batch: ScheduledBatch, lag: int = 0, input_ids: torch.Tensor | None = None
    ) -> tuple[list[Sequence], torch.Tensor | None]:
        """Forward and sample; returns the sampling requests and their tokens, still on the device."""
        decode = max(batch.num_new_tokens) == 1
        native = self.native is not None and decode and len(batch) <= self.native.max_batch
        graphed = (
            self.graphs is not None
            and decode
            and self.graphs.fits(len(batch))
            and all(batch.samples(i) for i in range(len(batch)))  # no prompt token among them
        )
        inputs = self.prepare(batch, native, lag, input_ids)
        md = inputs.attention
        if graphed:
            logits = self.graphs.logits(inputs.input_ids, inputs.positions, md)
            seqs = list(batch.seqs)
        else:
            if native:
                hidden = self.native.hidden(inputs.input_ids, md)
            else:
                hidden = self.model(inputs.input_ids, inputs.positions, ForwardContext(md, self.kv_cache))
            self._record_prompt_logprobs(batch, inputs, hidden)
            rows = [i for i in range(len(batch)) if batch.samples(i)]
            if not rows:
                return [], None
            seqs = [batch.seqs[i] for i in rows]
            index = to_device([inputs.last_index[i] for i in rows], self.device)
            if self.threads is not None:
                self.threads.enter_logits()
            if native:
                logits = self.native.logits(hidden[index])
            else:
                logits = self.model.compute_logits(hidden[index])
        if self.sampler is None:
            self.sampler = Sampler(logits.shape[1], self.device)
        return seqs, self.sampler(logits, seqs, offset=lag)

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
