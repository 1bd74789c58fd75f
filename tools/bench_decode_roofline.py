"""Decode against the memory-bandwidth roofline: a Llama-8B-shaped model with random bf16 weights.

A batch-1 decode step reads every weight once, so its ceiling is the copy bandwidth over the weight
bytes per token (all weights but the embedding table, of which one row is read). For each engine
mode the benchmark prints batch-1 decode tok/s, the achieved GB/s (weight bytes per token x tok/s)
and its share of the measured device-to-device copy bandwidth, then the total tok/s of a batch of
64 prompts. The model folder (config, byte-level tokenizer, random weights) is written once to
`--workdir` (default: /dev/shm where it has room, else the temporary directory) and reused.

    uv run python tools/bench_decode_roofline.py                       # Llama-8B shape, on the GPU
    uv run python tools/bench_decode_roofline.py --modes graphs,graphs+overlap
    uv run python tools/bench_decode_roofline.py --smoke               # tiny shape, any device (tests/ runs it)

Modes: eager (one step per round), multistep (--max-num-steps 10), overlap
(--enable-overlap-scheduler), graphs (--device-graph-capture), graphs+multistep, graphs+overlap,
graphs+overlap+vendor-blas (--use-vendor-blas: no batch-1 matrix-vector kernel),
graphs+overlap+unfused (the norms, residual adds and RoPE in kernels of their own, not in the
batch-1 products around them), graphs+overlap+no-pdl (the batch-1 products launched as ordinary
kernels, not as programmatic dependents, see max_kernels.dispatch.use_pdl). Modes with graphs need
a GPU. Each row ends with the weight shapes where the batch-1 kernel beat the vendor BLAS.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages" / "max-pipelines" / "tests"))
from fixtures.tiny_llm import byte_tokenizer  # noqa: E402  (the test fixtures' byte-level tokenizer)

SHAPES = {
    "llama-8b": dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
    ),
    "tiny": dict(
        vocab_size=258, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=10000.0,
    ),
}

MODES = {  # every switch given: on a GPU, graphs and overlap are on by default for Llama models
    "eager": dict(device_graph_capture=False, enable_overlap_scheduler=False, max_num_steps=1),
    "multistep": dict(device_graph_capture=False, enable_overlap_scheduler=False, max_num_steps=10),
    "overlap": dict(device_graph_capture=False, enable_overlap_scheduler=True),
    "graphs": dict(device_graph_capture=True, enable_overlap_scheduler=False, max_num_steps=1),
    "graphs+multistep": dict(device_graph_capture=True, enable_overlap_scheduler=False, max_num_steps=10),
    "graphs+overlap": dict(device_graph_capture=True, enable_overlap_scheduler=True),
    # the same with every matmul on the vendor BLAS (no batch-1 kernel): what that kernel buys
    "graphs+overlap+vendor-blas": dict(device_graph_capture=True, enable_overlap_scheduler=True, use_vendor_blas=True),
    # the same with the norms, residual adds and RoPE in kernels of their own: what fusing them buys
    "graphs+overlap+unfused": dict(device_graph_capture=True, enable_overlap_scheduler=True, fused_products=False),
    # the same with the batch-1 products launched as ordinary kernels, not as programmatic dependents
    "graphs+overlap+no-pdl": dict(device_graph_capture=True, enable_overlap_scheduler=True, pdl=False),
}


def layer_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    h, i, d = c["hidden_size"], c["intermediate_size"], c["hidden_size"] // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * d
    return {
        "self_attn.q_proj.weight": (h, h), "self_attn.k_proj.weight": (kv, h), "self_attn.v_proj.weight": (kv, h),
        "self_attn.o_proj.weight": (h, h), "mlp.gate_proj.weight": (i, h), "mlp.up_proj.weight": (i, h),
        "mlp.down_proj.weight": (h, i), "input_layernorm.weight": (h,), "post_attention_layernorm.weight": (h,),
    }


def all_shapes(c: dict) -> list[tuple[int, ...]]:
    """Every weight's shape: embedding, layers, final norm, LM head."""
    v, h = c["vocab_size"], c["hidden_size"]
    return [(v, h), *list(layer_shapes(c).values()) * c["num_hidden_layers"], (h,), (v, h)]


def write_model(path: Path, shape: str, device: torch.device) -> Path:
    """Config, tokenizer and random bf16 weights (one file per layer), unless `path` holds them already."""
    c = SHAPES[shape]
    if (path / "done").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)
    config = dict(
        c, architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu", rms_norm_eps=1e-5,
        torch_dtype="bfloat16", tie_word_embeddings=False, bos_token_id=0, eos_token_id=1,
    )
    (path / "config.json").write_text(json.dumps(config, indent=2))
    byte_tokenizer().save_pretrained(path)
    gen = torch.Generator(device=device).manual_seed(0)

    def rand(*size: int) -> torch.Tensor:
        if len(size) == 1:
            return torch.ones(size, dtype=torch.bfloat16)
        return (torch.randn(size, generator=gen, device=device, dtype=torch.bfloat16) * 0.02).cpu()

    h, v = c["hidden_size"], c["vocab_size"]
    save_file({"model.embed_tokens.weight": rand(v, h)}, path / "model-embed.safetensors")
    for layer in tqdm(range(c["num_hidden_layers"]), desc="Writing random weights", unit="layer", disable=None):
        tensors = {f"model.layers.{layer}.{name}": rand(*size) for name, size in layer_shapes(c).items()}
        save_file(tensors, path / f"model-layer{layer:03d}.safetensors")
    save_file({"model.norm.weight": rand(h), "lm_head.weight": rand(v, h)}, path / "model-head.safetensors")
    (path / "done").write_text("")
    return path


def model_folder(workdir: str | None, shape: str) -> Path | None:
    """Where the model lives: `workdir`, else /dev/shm, else the temporary directory; the first that
    holds it already or has room for it (None: none has)."""
    need = 1.1 * 2 * sum(map(math.prod, all_shapes(SHAPES[shape])))
    for base in [Path(workdir)] if workdir else [Path("/dev/shm"), Path(tempfile.gettempdir())]:
        path = base / f"max-roofline-{shape}"
        if (path / "done").exists():
            return path
        if base.is_dir() or workdir:
            base.mkdir(parents=True, exist_ok=True)
            if shutil.disk_usage(base).free >= need:
                return path
    return None


def weight_bytes_per_token(model) -> int:
    """Bytes of every weight a decode step reads: all parameters but the embedding table."""
    embed = model.model.embed_tokens.weight
    return sum(p.numel() * p.element_size() for p in model.parameters() if p is not embed)


def copy_bandwidth(device: torch.device) -> float:
    """Copy bandwidth in GB/s (bytes read + written) of a 1 GiB (CPU: 256 MiB) buffer."""
    if device.type == "cuda":
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_kernels import copy_bandwidth as device_copy_bandwidth

        return device_copy_bandwidth(device)
    src = torch.empty(1 << 28, dtype=torch.uint8)
    dst = torch.empty_like(src)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    return 2 * src.numel() / min(times) / 1e9


def profile_steps(llm, prompts: list[list[int]], steps: int = 16, top: int = 12) -> None:
    """Where one decode step's time goes: the kernels (CPU: the operators) of a short generation of
    `prompts` (one batch), grouped by name, with their total time per step."""
    from max_config import SamplingParams
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    on_gpu = torch.cuda.is_available() and llm.runner.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    params = SamplingParams(temperature=0.0, max_new_tokens=steps + 1, ignore_eos=True)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        llm.generate(prompts, params)
        if on_gpu:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    kind = DeviceType.CUDA if on_gpu else DeviceType.CPU
    rows = [e for e in prof.key_averages() if e.device_type == kind]
    self_us = (lambda e: e.self_device_time_total) if on_gpu else (lambda e: e.self_cpu_time_total)
    rows.sort(key=self_us, reverse=True)
    total = sum(map(self_us, rows)) / (steps + 1) / 1e3
    print(f"  profile, batch {len(prompts)}: {'kernel' if on_gpu else 'operator'} time {total:.2f} ms per step "
          f"(prefill counted as one step), wall {1e3 * wall / (steps + 1):.2f} ms per step")
    for e in rows[:top]:
        print(f"    {self_us(e) / (steps + 1) / 1e3:8.3f} ms  {e.count // (steps + 1):>5}x  {e.key[:90]}")


def measure(path: Path, device: str, mode: str, new_tokens: int, batch: int, max_length: int,
            profile: bool = False) -> dict:
    from max_config import SamplingParams
    from max_pipelines import LLM

    from max_kernels import set_kernel_preferences

    options = dict(MODES[mode])
    set_kernel_preferences(fused_products=options.pop("fused_products", True), pdl=options.pop("pdl", True))
    built = time.perf_counter()
    llm = LLM(model=str(path), devices=device, max_length=max_length, max_batch_size=max(batch, 1), **options)
    built = time.perf_counter() - built
    params = SamplingParams(temperature=0.0, max_new_tokens=new_tokens, ignore_eos=True)
    prompt = list(range(2, 18))
    prompts = [[2 + (i * 7 + j) % 250 for j in range(16)] for i in range(batch)]
    warm = SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True)
    llm.generate([prompt], warm)  # kernels compile for both batch sizes before anything is timed
    llm.generate(prompts, warm)
    rates = []
    for _ in range(3):
        m = llm.generate([prompt], params)[0].metrics
        rates.append((new_tokens - 1) / (m.finish_time - m.first_token_time))
    totals = []
    for _ in range(3):
        start = time.perf_counter()
        outs = llm.generate(prompts, params)
        totals.append(sum(len(o.token_ids) for o in outs) / (time.perf_counter() - start))
    result = dict(decode=statistics.median(rates), batch_total=statistics.median(totals), bytes=weight_bytes_per_token(llm.runner.model),
                  build=built)
    from max_kernels.gemv import gemv_choices

    result["gemv"] = " ".join(f"{n}x{k}{'+' + act if act else ''}" for (n, k, _, act), won in gemv_choices().items() if won)
    if profile:
        profile_steps(llm, [prompt])
        profile_steps(llm, prompts)
    del llm, outs
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="llama-8b")
    p.add_argument("--devices", default=None, help="gpu (default when one is present) or cpu")
    p.add_argument("--modes", default=None, help="comma-separated modes (default: all that the device runs)")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--max-length", type=int, default=None,
                   help="the engine's --max-length (default: prompt + new tokens + 48); graphs pad attention to it")
    p.add_argument("--workdir", default=None)
    p.add_argument("--smoke", action="store_true", help="tiny shape, 8 tokens, batch 4")
    p.add_argument("--profile", action="store_true", help="after each mode, the time per decode step by kernel")
    p.add_argument("--write-only", action="store_true", help="write the model folder and stop")
    p.add_argument("--no-header", action="store_true", help="print the table's rows only (for runs of one mode each)")
    args = p.parse_args()
    if args.smoke:
        args.shape, args.new_tokens, args.batch = "tiny", 8, 4
    device = args.devices or ("gpu" if torch.cuda.is_available() else "cpu")
    tdev = torch.device("cuda" if device.startswith("gpu") else "cpu")
    modes = args.modes.split(",") if args.modes else [m for m in MODES if tdev.type == "cuda" or "graphs" not in m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        print(f"--modes: unknown mode {unknown[0]!r}; pick from {', '.join(MODES)}", file=sys.stderr)
        return 2
    if tdev.type == "cpu" and args.shape != "tiny":
        print(f"--shape {args.shape}: that is a GPU benchmark; on the CPU use --smoke or --shape tiny", file=sys.stderr)
        return 2
    path = model_folder(args.workdir, args.shape)
    if path is None:
        print(f"--workdir {args.workdir or '/dev/shm or ' + tempfile.gettempdir()}: the {args.shape} weights do not "
              "fit there; pass another --workdir", file=sys.stderr)
        return 2
    start = time.perf_counter()
    write_model(path, args.shape, tdev)
    if args.write_only:
        print(f"model folder {path} ready ({time.perf_counter() - start:.1f} s)")
        return 0
    copy_gbs = copy_bandwidth(tdev)
    name = torch.cuda.get_device_name(tdev) if tdev.type == "cuda" else "CPU"
    max_length = args.max_length or 64 + args.new_tokens
    if not args.no_header:
        print(f"{name}: copy bandwidth {copy_gbs:.0f} GB/s; shape {args.shape}, bf16 weights, max length "
              f"{max_length}, batch-1 decode of "
              f"{args.new_tokens} tokens and batch {args.batch} total, medians of 3")
        print(f"{'mode':<18}{'tok/s (b=1)':>12}{'GB/s':>9}{'% copy':>8}{'ms/token':>10}"
              f"{f'tok/s (b={args.batch})':>15}{'build s':>9}  batch-1 kernel")
    for mode in modes:
        r = measure(path, device, mode, args.new_tokens, args.batch, max_length, args.profile)
        gbs = r["bytes"] * r["decode"] / 1e9
        print(f"{mode:<18}{r['decode']:>12.1f}{gbs:>9.1f}{100 * gbs / copy_gbs:>7.1f}%{1000 / r['decode']:>10.2f}"
              f"{r['batch_total']:>15.1f}{r['build']:>9.1f}  {r['gemv'] or '-'}", flush=True)
    print(f"weight bytes per token: {r['bytes'] / 1e9:.2f} GB; copy bandwidth {copy_gbs:.0f} GB/s; "
          f"roofline {copy_gbs * 1e9 / r['bytes']:.1f} tok/s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
