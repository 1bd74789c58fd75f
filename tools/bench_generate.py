"""Generation benchmark: our engine against HF transformers and llama.cpp on the same GGUF, in one run.

Each measurement runs in a fresh worker process (so load time and cold start are real), and the
engines alternate run by run. Printed: load time, cold start to first token, TTFT, batch-1 decode
tok/s, and total tok/s for a batch of prompts, with our ratio to each peer.

    uv run --group bench python tools/bench_generate.py
    uv run --group bench python tools/bench_generate.py --peers ours,hf --smoke   # quick, no llama.cpp

The peers come from the workspace's optional `bench` dependency group: llama-cpp-python (built from
source on first install, ~5 minutes) and accelerate (which transformers needs to load a GGUF file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
BATCH_PROMPTS = [
    f"Question {i}: explain, in a few sentences, why the sky looks {c} at {t}."
    for i, (c, t) in enumerate(
        [(c, t) for c in ("blue", "red", "orange", "grey") for t in ("noon", "dusk", "dawn", "night", "sea", "altitude", "winter", "summer")]
    )
]


def default_model() -> str:
    from max_config import default_model_path

    return str(default_model_path())


# --------------------------------------------------------------------------------------------
# Workers: each prints one JSON line with its measurements.
# --------------------------------------------------------------------------------------------


def worker_ours(args) -> dict:
    from max_config import SamplingParams
    from max_pipelines import LLM

    t0 = time.perf_counter()
    llm = LLM(model=args.model, max_batch_size=max(args.batch, 1), max_length=2048)
    load_s = time.perf_counter() - t0
    params = SamplingParams(temperature=0.0, max_new_tokens=args.new_tokens, ignore_eos=True)

    def one_stream():
        start = time.perf_counter()
        first = None
        n = 0
        for delta in llm.stream(PROMPT, params):
            if delta.token_ids and first is None:
                first = time.perf_counter()
            n += len(delta.token_ids)
        end = time.perf_counter()
        return start, first, end, n

    start, first, end, n = one_stream()
    cold_first_token = first - args.spawn_time_offset(start)
    # A second run with everything warm gives the steady-state figures.
    start, first, end, n = one_stream()
    out = {
        "load_s": load_s,
        "cold_start_s": cold_first_token,
        "ttft_ms": (first - start) * 1e3,
        "decode_tok_s": (n - 1) / (end - first),
    }
    if args.batch:
        prompts = BATCH_PROMPTS[: args.batch]
        t = time.perf_counter()
        outs = llm.generate(prompts, params)
        dt = time.perf_counter() - t
        out["batch_tok_s"] = sum(len(o.token_ids) for o in outs) / dt
    return out


def worker_hf(args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.hf_dtype]
    path = Path(args.model)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    model.eval()
    load_s = time.perf_counter() - t0

    def run(prompt: str, streaming: bool):
        ids = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        kwargs = dict(**ids, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)
        start = time.perf_counter()
        if not streaming:
            with torch.inference_mode():
                out = model.generate(**kwargs)
            return start, None, time.perf_counter(), out.shape[1] - ids["input_ids"].shape[1]
        first = None
        times = []

        class Timer:
            def put(self, value):
                times.append(time.perf_counter())

            def end(self):
                pass

        with torch.inference_mode():
            out = model.generate(**kwargs, streamer=Timer())
        # The streamer sees the prompt first, then one call per new token.
        first = times[1]
        return start, first, time.perf_counter(), out.shape[1] - ids["input_ids"].shape[1]

    start, first, end, n = run(PROMPT, True)
    cold = first - args.spawn_time_offset(start)
    start, first, end, n = run(PROMPT, True)
    out = {"load_s": load_s, "cold_start_s": cold, "ttft_ms": (first - start) * 1e3, "decode_tok_s": (n - 1) / (end - first)}
    if args.batch:
        t = time.perf_counter()
        total = sum(run(p, False)[3] for p in BATCH_PROMPTS[: args.batch])
        out["batch_tok_s"] = total / (time.perf_counter() - t)
    return out


def worker_llamacpp(args) -> dict:
    import llama_cpp

    defaults = llama_cpp.llama_model_default_params

    def model_params():
        # The repacked (extra buffer type) Q4_1 path crashes on multi-token batches on CPUs with AMX.
        params = defaults()
        params.use_extra_bufts = False
        return params

    llama_cpp.llama_model_default_params = model_params
    t0 = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=args.model, n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads, verbose=False
    )
    load_s = time.perf_counter() - t0

    def run(prompt: str):
        llm.reset()  # a fresh context: no prompt-cache reuse between runs
        ids = llm.tokenize(_chat(prompt).encode(), add_bos=False, special=True)
        start = time.perf_counter()
        first = None
        n = 0
        for _tok in llm.generate(ids, top_k=1, temp=0.0, reset=True):
            if first is None:
                first = time.perf_counter()
            n += 1
            if n >= args.new_tokens:
                break
        return start, first, time.perf_counter(), n

    start, first, end, n = run(PROMPT)
    cold = first - args.spawn_time_offset(start)
    start, first, end, n = run(PROMPT)
    out = {"load_s": load_s, "cold_start_s": cold, "ttft_ms": (first - start) * 1e3, "decode_tok_s": (n - 1) / (end - first)}
    if args.batch:
        t = time.perf_counter()
        total = sum(run(p)[3] for p in BATCH_PROMPTS[: args.batch])
        out["batch_tok_s"] = total / (time.perf_counter() - t)
    return out


def _chat(prompt: str) -> str:
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


WORKERS = {"ours": worker_ours, "hf": worker_hf, "llamacpp": worker_llamacpp}


def run_worker(args) -> None:
    spawn = args.spawn_time
    # perf_counter has no fixed origin across processes: convert via wall-clock once.
    offset = time.time() - time.perf_counter()
    args.spawn_time_offset = lambda _start: spawn - offset
    if args.worker == "ours":
        import max_pipelines  # noqa: F401  (first: it sets the engine's thread defaults before torch loads)
    if args.worker != "llamacpp":  # llama.cpp's cold start should not pay for importing torch
        import torch

        torch.set_num_threads(args.threads)
    print(json.dumps(WORKERS[args.worker](args)), flush=True)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def spawn(worker: str, args, batch: int, new_tokens: int | None = None) -> dict:
    cmd = [
        sys.executable, __file__, "--worker", worker, "--model", args.model,
        "--new-tokens", str(new_tokens or args.new_tokens),
        "--threads", str(args.threads), "--batch", str(batch), "--hf-dtype", args.hf_dtype,
        "--wait-policy", args.wait_policy,
        "--spawn-time", repr(time.time()),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(args.threads))
    # Each engine waits for its threads as it does by default, unless --wait-policy sets one for all.
    env.pop("OMP_WAIT_POLICY", None)
    if args.wait_policy != "default":
        env["OMP_WAIT_POLICY"] = args.wait_policy.upper()
    # Cold start as an installed engine sees it: modules load from cached bytecode (pip compiles it at
    # install, Python writes it on first import), not recompiled from source on every start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{worker} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="GGUF file (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--peers", default="ours,hf,llamacpp", help="comma-separated: ours, hf, llamacpp")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--batch", type=int, default=32, help="prompts in the throughput run (0 skips it)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--hf-dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument(
        "--wait-policy", choices=["default", "passive", "active"], default="default",
        help="OpenMP wait policy for every engine (default: each engine's own)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny run: 8 new tokens, 2 prompts, 1 repeat")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--spawn-time", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.model = args.model or default_model()
    if args.worker:
        return run_worker(args)
    if args.smoke:
        args.new_tokens, args.batch, args.repeats = 8, 2, 1
    peers = args.peers.split(",")
    unknown = [w for w in peers if w not in WORKERS]
    if unknown:
        sys.exit(f"--peers: unknown peer {unknown[0]!r}; pick from {', '.join(WORKERS)}")
    if "llamacpp" in peers:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            print("llama-cpp-python is not installed; run with `uv run --group bench ...`", file=sys.stderr)
            peers.remove("llamacpp")
    if "hf" in peers:
        try:
            import accelerate  # noqa: F401
        except ImportError:
            print("accelerate is not installed (transformers needs it for GGUF); run with `uv run --group bench ...`", file=sys.stderr)
            peers.remove("hf")
    if not args.smoke:  # one unmeasured run each, so every engine starts from cached bytecode
        for w in peers:
            print(f"warm-up: {w}", file=sys.stderr, flush=True)
            spawn(w, args, 0, new_tokens=2)
    results: dict[str, list[dict]] = {w: [] for w in peers}
    for r in range(args.repeats):
        order = peers if r % 2 == 0 else peers[::-1]
        for w in order:
            print(f"run {r + 1}/{args.repeats}: {w}", file=sys.stderr, flush=True)
            results[w].append(spawn(w, args, args.batch))
            print(f"  {json.dumps(results[w][-1])}", file=sys.stderr, flush=True)
    print_table(results, args)


def print_table(results: dict[str, list[dict]], args) -> None:
    keys = [("load_s", "load s", False), ("cold_start_s", "cold start s", False), ("ttft_ms", "TTFT ms", False),
            ("decode_tok_s", "decode tok/s (b=1)", True), ("batch_tok_s", f"total tok/s ({args.batch} prompts)", True)]
    med = {w: {k: statistics.median(r[k] for r in runs) for k, *_ in keys if all(k in r for r in runs)} for w, runs in results.items()}
    print(f"\nmodel {Path(args.model).name}, {args.new_tokens} new tokens, {args.threads} threads, median of {args.repeats}")
    print(f"{'metric':<28}" + "".join(f"{w:>14}" for w in med) + "".join(f"{'ours/' + w:>14}" for w in med if w != "ours"))
    for k, label, higher in keys:
        row = f"{label:<28}" + "".join(f"{med[w].get(k, float('nan')):>14.2f}" for w in med)
        if "ours" in med:
            for w in med:
                if w == "ours":
                    continue
                a, b = med["ours"].get(k), med[w].get(k)
                ratio = (a / b if higher else b / a) if a and b else float("nan")
                row += f"{ratio:>13.2f}x"
        print(row)
    print("(ratios > 1 mean ours is better: faster rate or shorter time)")


if __name__ == "__main__":
    main()
