"""The offline API: `LLM(model).generate(prompts, params)` and `LLM.stream(prompt, params)`."""

from __future__ import annotations

import resource
import time
import weakref
from collections.abc import Iterator

import torch

from max_config import ConfigError, PipelineConfig, SamplingParams
from max_kvcache import KVCacheStats
from max_pipelines.engine.builder import EngineParts, build_engine
from max_pipelines.engine.multistep import burst_length, next_decode_batch
from max_pipelines.engine.overlap import can_overlap, run_overlapped
from max_pipelines.engine.outputs import RequestOutput, StreamDelta
from max_pipelines.engine.request_state import RequestState
from max_pipelines.engine.sequence import Sequence
from max_pipelines.tokenization.chat_template import apply_chat_template


class LLM:
    """Loads a model once and generates for many prompts at a time with continuous batching."""

    def __init__(self, model: str | None = None, **kwargs):
        self._init(PipelineConfig.from_flat(model_path=model, **kwargs))

    @classmethod
    def from_config(cls, config: PipelineConfig, num_blocks: int | None = None) -> LLM:
        """Build from a resolved config; `num_blocks` caps the KV cache below the memory plan."""
        llm = cls.__new__(cls)
        llm._init(config, num_blocks)
        return llm

    def _init(self, config: PipelineConfig, num_blocks: int | None = None) -> None:
        start = time.perf_counter()
        self.config = config
        parts: EngineParts = build_engine(config, num_blocks)
        self.tokenizer = parts.tokenizer
        self.scheduler = parts.scheduler
        self.runner = parts.runner
        self.kv_manager = parts.kv_manager
        self.max_length = parts.max_length
        self.eos_token_ids = parts.eos_token_ids
        self.echo = parts.enable_echo
        self.max_num_steps = parts.max_num_steps
        self.overlap = parts.overlap
        self._states: dict[Sequence, RequestState] = {}
        # Flushes the KV connector (write-through tiers) on `close`, garbage collection or exit.
        self._closer = weakref.finalize(self, self.kv_manager.close)
        self.load_seconds = time.perf_counter() - start

    @property
    def kv_stats(self) -> KVCacheStats:
        """Prefix-cache tokens (queries, hits, connector hits) and blocks (evictions, connector loads/saves)."""
        return self.kv_manager.stats

    def close(self) -> None:
        """Hand pending KV blocks to the connector and close it; later calls do nothing."""
        self._closer()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- requests -------------------------------------------------------------------------------

    def encode(self, prompt: str | list[int], use_chat_template: bool = True) -> list[int]:
        """Token ids of a prompt: ids pass through; text goes through the chat template when asked."""
        if not isinstance(prompt, str):
            return list(prompt)
        if use_chat_template:
            return apply_chat_template(self.tokenizer, prompt)
        return self.tokenizer.encode(prompt)

    def add_request(self, prompt: str | list[int], params: SamplingParams, use_chat_template: bool = True) -> Sequence:
        """Queue one request; `step()` advances it. `max_new_tokens=0` finishes it at once, with no tokens."""
        ids = self.encode(prompt, use_chat_template)
        if not ids:
            raise ConfigError("--prompt: the prompt has no tokens; give some text")
        if len(ids) >= self.max_length:
            raise ConfigError(
                f"--max-length {self.max_length}: the prompt has {len(ids)} tokens and leaves no room to "
                "generate; shorten the prompt or raise --max-length"
            )
        seq = Sequence(
            prompt_token_ids=ids,
            params=params,
            max_new_tokens=self.max_length if params.max_new_tokens is None else params.max_new_tokens,
            max_length=self.max_length,
            eos_token_ids=self.eos_token_ids,
            extra_keys=("long-rope",) if (n := self.runner.long_rope_from) and len(ids) > n else (),
            echo=self.echo,
        )
        self._states[seq] = RequestState(seq, prompt, self.tokenizer)
        self.scheduler.add(seq)
        if seq.max_new_tokens == 0:  # nothing to generate: done before it runs
            self.scheduler.finish(seq, "max_new_tokens")
            self._states[seq].on_finish(time.perf_counter())
        return seq

    # ---- the loop -------------------------------------------------------------------------------

    def step(self) -> None:
        """Run one scheduled batch (for several decode steps with `--max-num-steps`, see `multistep`,
        pipelined with `--enable-overlap-scheduler`, see `overlap`) and hand each sampled token to its
        request's output state."""
        batch = self.scheduler.schedule()
        if not batch.seqs:
            raise RuntimeError(
                "the KV cache cannot hold even one waiting request: raise --device-memory-utilization "
                "or lower --max-length"
            )
        steps = burst_length(self.scheduler, batch, self.max_num_steps)
        if self.overlap and steps > 1 and can_overlap(batch):
            run_overlapped(self.runner, batch, steps, self._apply)
            return
        for i in range(steps):
            if i:
                batch = next_decode_batch(batch)
                if not batch.seqs:
                    break
            self._apply(batch, self.runner.run(batch))

    def _apply(self, batch, sampled: dict[Sequence, int]) -> None:
        """Append a step's sampled tokens, check stops, and hand each token to its request's state."""
        now = time.perf_counter()
        self.scheduler.update(batch, sampled)
        for seq, token in sampled.items():
            state = self._states[seq]
            state.on_token(token, now)
            if state.stopped_by_string and not seq.is_finished:
                self.scheduler.finish(seq, "stop_string")
            if seq.is_finished:
                state.on_finish(now)

    def generate(
        self,
        prompts: list[str | list[int]] | str,
        sampling_params: SamplingParams | list[SamplingParams] | None = None,
        use_chat_template: bool = True,
    ) -> list[RequestOutput]:
        """Generate for all prompts together; outputs come back in prompt order."""
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], int)):
            prompts = [prompts]
        params = sampling_params if sampling_params is not None else SamplingParams()
        if not isinstance(params, list):
            params = [params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(params)} sampling params")
        seqs: list[Sequence] = []
        try:
            for prompt, sp in zip(prompts, params):
                seqs.append(self.add_request(prompt, sp, use_chat_template))
            while not all(s.is_finished for s in seqs):
                self.step()
            return [self._states[s].output() for s in seqs]
        finally:
            self.release(seqs)

    def stream(
        self, prompt: str | list[int], sampling_params: SamplingParams | None = None, use_chat_template: bool = True
    ) -> Iterator[StreamDelta]:
        """Yield one delta per generated token; partial characters and stop strings are held back."""
        seq = self.add_request(prompt, sampling_params or SamplingParams(), use_chat_template)
        state = self._states[seq]
        try:
            while not seq.is_finished:
                self.step()
                yield from state.take_deltas()
            yield from state.take_deltas()
        finally:
            self.release([seq])

    def peak_memory(self) -> str:
        """Peak memory so far: CUDA max allocated on a GPU, else the process's peak resident set."""
        device = self.runner.device
        if device.type == "cuda":
            return f"{torch.cuda.max_memory_allocated(device) / 2**20:.1f} MiB (device)"
        return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB (RSS)"

    def output_of(self, seq: Sequence) -> RequestOutput:
        return self._states[seq].output()

    def take_deltas(self, seq: Sequence) -> list[StreamDelta]:
        """The stream deltas of `seq` produced since the last call."""
        return self._states[seq].take_deltas()

    def release(self, seqs: list[Sequence]) -> None:
        """Forget requests added with `add_request` (aborting those still running)."""
        for seq in seqs:
            if not seq.is_finished:
                self.scheduler.finish(seq, "aborted")
            self._states.pop(seq, None)
