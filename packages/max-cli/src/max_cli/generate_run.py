"""The run behind `max generate`: load, warm up, stream the text to stdout, report to stderr."""

from __future__ import annotations

import itertools
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace

from max_config import ConfigError, PipelineConfig, SamplingParams


@contextmanager
def progress(message: str):
    """A spinner on stderr while a slow step runs (a single line when stderr is not a terminal)."""
    err = sys.stderr
    if not err.isatty():
        print(f"{message}...", file=err, flush=True)
        yield
        return
    done = threading.Event()

    def spin() -> None:
        for frame in itertools.cycle("|/-\\"):
            err.write(f"\r{frame} {message}")
            err.flush()
            if done.wait(0.1):
                break
        err.write("\r" + " " * (len(message) + 2) + "\r")
        err.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@dataclass
class RunTimes:
    start: float
    outputs: list  # RequestOutput, in prompt order

    @property
    def ttfts(self) -> list[float]:
        return [o.metrics.first_token_time - self.start for o in self.outputs if o.metrics.first_token_time]

    @property
    def itls(self) -> list[float]:
        return [b - a for o in self.outputs for a, b in itertools.pairwise(o.metrics.token_times)]


def _print_piece(out, text: str, token_ids: list[int], detokenize: bool) -> None:
    out.write(text if detokenize else "".join(f"{t} " for t in token_ids))
    out.flush()


def _logprobs_line(logprobs: list[dict[int, float]]) -> str:
    """`--logprobs N`: one `id:logprob/alt:logprob/...` group per generated token, the chosen token first."""
    groups = ("/".join(f"{token}:{lp:.4f}" for token, lp in entry.items()) for entry in logprobs)
    return "logprobs: " + " ".join(groups) + "\n"


def _run(llm, prompts: list[str], params: SamplingParams, show: bool) -> RunTimes:
    """Generate all prompts as one batch; with `show`, stream one prompt or print several in order, labelled."""
    start = time.perf_counter()
    seqs = []
    try:
        for prompt in prompts:
            seqs.append(llm.add_request(prompt, params))
        _loop(llm, seqs, params, show)
    finally:
        outputs = [llm.output_of(s) for s in seqs]
        llm.release(seqs)
    return RunTimes(start, outputs)


def _loop(llm, seqs, params: SamplingParams, show: bool) -> None:
    out = sys.stdout
    printed = 0
    single = len(seqs) == 1
    while not all(s.is_finished for s in seqs):
        llm.step()
        if not show:
            continue
        if single:
            for delta in llm.take_deltas(seqs[0]):
                _print_piece(out, delta.text, delta.token_ids, params.detokenize)
        while printed < len(seqs) and seqs[printed].is_finished:
            if not single:
                o = llm.output_of(seqs[printed])
                out.write(f"[{printed + 1}] ")
                _print_piece(out, o.text, o.token_ids, params.detokenize)
            out.write("\n")
            if params.logprobs:
                out.write(_logprobs_line(llm.output_of(seqs[printed]).logprobs))
            out.flush()
            printed += 1


def _percentiles(name: str, values: list[float]) -> str:
    if len(values) < 2:
        return f"{name}: n/a (fewer than 2 samples)"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"{name} p50/p90/p99: {q[49] * 1e3:.2f} / {q[89] * 1e3:.2f} / {q[98] * 1e3:.2f} ms ({len(values)} samples)"


def _kv_line(stats, before) -> str:
    """Prefix tokens the printed run did not recompute: device hits plus blocks loaded from the connector."""
    hits, connector = stats.hits - before.hits, stats.connector_hits - before.connector_hits
    return f"KV cache: {hits} prefix tokens reused ({connector} from connector)"


def _report(llm, run: RunTimes, params: SamplingParams, warm: list[RunTimes], kv_before) -> list[str]:
    outs = run.outputs
    prompt_tokens = sum(len(o.prompt_token_ids) for o in outs)
    output_tokens = sum(len(o.token_ids) for o in outs)
    firsts = [o.metrics.first_token_time for o in outs if o.metrics.first_token_time]
    end = max(o.metrics.finish_time or run.start for o in outs)
    lines = [
        f"Prompt size: {prompt_tokens} tokens",
        f"Output size: {output_tokens} tokens",
        f"Startup time: {llm.load_seconds * 1e3:.1f} ms",
    ]
    if firsts:
        ttft = max(firsts) - run.start
        decode_time = end - min(firsts)
        lines += [
            f"Time to first token: {ttft * 1e3:.2f} ms",
            f"Prompt eval throughput: {prompt_tokens / ttft:.2f} tokens/s",
            f"Eval throughput: {(output_tokens - len(outs)) / decode_time if decode_time > 0 else float('nan'):.2f} tokens/s",
        ]
    lines.append(f"Peak memory: {llm.peak_memory()}")
    lines.append(_kv_line(llm.kv_stats, kv_before))
    reasons = [o.stop_reason or "none" for o in outs]
    if params.max_new_tokens is not None:
        reasons = [r + f" (hit --max-new-tokens {params.max_new_tokens})" if r == "max_new_tokens" else r for r in reasons]
    if len(outs) == 1:
        lines.append(f"Stop reason: {reasons[0]}")
    else:
        lines.append("Stop reason: " + ", ".join(f"[{i + 1}] {r}" for i, r in enumerate(reasons)))
    if warm:
        runs = [*warm, run]
        lines.append(_percentiles("Time to first token", [t for r in runs for t in r.ttfts]))
        lines.append(_percentiles("Inter-token latency", [t for r in runs for t in r.itls]))
    return lines


def run_generate(config: PipelineConfig, prompts: list[str], sampling_params: SamplingParams, num_warmups: int) -> int:
    """Load the model, run `num_warmups` full unprinted generations, then stream the real one; exit code."""
    from max_pipelines import LLM

    try:
        with progress("loading model"):
            llm = LLM.from_config(config)
        with llm:  # closing flushes the KV connector's write-through tiers
            warm = []
            for i in range(num_warmups):
                with progress(f"warm-up {i + 1}/{num_warmups}"):
                    warm.append(_run(llm, prompts, sampling_params, show=False))
            kv_before = replace(llm.kv_stats)
            run = _run(llm, prompts, sampling_params, show=True)
    except ConfigError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    print("\n".join(_report(llm, run, sampling_params, warm, kv_before)), file=sys.stderr, flush=True)
    return 0
