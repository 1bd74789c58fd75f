"""Benchmark of the GGUF and sampling kernels.

On a GPU: achieved GB/s of dequantize and of the batch-1 quantized GEMV against the measured copy
bandwidth (target: 70% of it), and the speed-up over the PyTorch twin; the sampler's time per step.
On the CPU: the quantized matmul paths (float32, bfloat16 and int4pack) at batch 1 on the
SmolLM2-135M shapes, with their error against float64, which is how `QuantizedWeight` picks its
default CPU path; and the sampling twin's time per step.

    uv run python tools/bench_kernels_gguf_sampling.py            # GPU if there is one, else CPU
    uv run python tools/bench_kernels_gguf_sampling.py --cpu      # the CPU comparison only
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from max_kernels.gguf import (
    GGMLType,
    QuantizedWeight,
    dequantize_ref,
    dequantize_triton,
    quantized_linear_ref,
    quantized_linear_triton,
)
from max_kernels.gguf.formats import BLOCK_GEOMETRY, FLOAT_TYPES
from max_kernels.gguf.synthetic import random_blocks
from max_kernels.sampling import sample_ref, sample_triton

QUANTIZED = [GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q8_0, GGMLType.Q4_K, GGMLType.Q6_K]
SMOLLM2_SHAPES = [(576, 576), (1536, 576), (576, 1536), (49152, 576)]
GPU_SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (128256, 4096)]  # Llama-3-8B


def cpu_time_ms(fn, repeat: int = 20, rounds: int = 5) -> float:
    """Best mean over a few rounds: the CPU is shared, the minimum is the least disturbed."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best * 1e3


def sampling_params(batch: int, device, top_k: int, top_p: float) -> dict:
    return dict(
        temperature=torch.full((batch,), 0.8, device=device),
        top_k=torch.full((batch,), top_k, dtype=torch.int32, device=device),
        top_p=torch.full((batch,), top_p, device=device),
        min_p=torch.zeros(batch, device=device),
        seeds=torch.arange(batch, device=device),
        steps=torch.zeros(batch, dtype=torch.int64, device=device),
    )


SAMPLING_CASES = [(-1, 1.0), (50, 1.0), (-1, 0.9), (50, 0.9)]


def bench_cpu() -> None:
    print(f"CPU, {torch.get_num_threads()} threads: quantized linear at batch 1, ms (max |err| / max |y|)")
    print(f"{'shape':>11} {'type':>5} {'float32':>18} {'bfloat16':>18} {'int4pack':>18}")
    for out_features, in_features in SMOLLM2_SHAPES:
        x = torch.randn(1, in_features)
        for qtype in (GGMLType.Q4_1, GGMLType.Q8_0):
            data = random_blocks(qtype, (out_features, in_features))
            exact = x.double() @ dequantize_ref(data, qtype, (out_features, in_features)).double().T
            cells = []
            for path in ("float32", "bfloat16", "int4pack"):
                if path == "int4pack" and qtype == GGMLType.Q8_0:
                    cells.append(f"{'-':>18}")
                    continue
                weight = QuantizedWeight(qtype, data, (out_features, in_features), cpu_path=path)
                ms = cpu_time_ms(lambda: quantized_linear_ref(x, weight), repeat=3 if out_features > 10000 else 50)
                err = ((quantized_linear_ref(x, weight).double() - exact).abs().max() / exact.abs().max()).item()
                cells.append(f"{ms:8.3f} ({err:7.1e})")
            print(f"{out_features:>5}x{in_features:<5} {qtype.name:>5} {' '.join(cells)}")
    vocab = 49152
    print(f"\nsampling twin, vocab {vocab}, ms per step")
    for batch in (1, 8):
        logits = torch.randn(batch, vocab) * 4
        for top_k, top_p in SAMPLING_CASES:
            ms = cpu_time_ms(lambda: sample_ref(logits, **sampling_params(batch, "cpu", top_k, top_p)), repeat=5)
            print(f"  batch {batch:>2} top_k {top_k:>3} top_p {top_p:.1f}: {ms:7.2f}")


def gpu_time_ms(fn) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=100)


def check_gpu(device: torch.device, shape: tuple[int, int] = (4096, 4096), dtype=torch.bfloat16) -> int:
    """Every block type's dequantize (bit-exact) and GEMV/GEMM (batch 1 and 8, to 3e-2 of the output
    scale) on the GPU against the PyTorch twin; returns the number of mismatches."""
    failures = 0
    for qtype in [t for t in BLOCK_GEOMETRY if t not in FLOAT_TYPES]:
        data = random_blocks(qtype, shape).to(device)
        weight = QuantizedWeight(qtype, data, shape)
        exact = torch.equal(dequantize_triton(data, qtype, shape).float(), dequantize_ref(data, qtype, shape).float())
        errs = []
        for batch in (1, 8):
            x = torch.randn(batch, shape[1], device=device, dtype=dtype)
            want = quantized_linear_ref(x.float(), weight).float()
            got = quantized_linear_triton(x, weight).float()
            errs.append(((got - want).abs().max() / want.abs().max()).item())
        ok = exact and max(errs) < 3e-2
        failures += not ok
        print(f"  {qtype.name:>7}: dequantize {'exact' if exact else 'DIFFERS'}, "
              f"linear error b1 {errs[0]:.1e} b8 {errs[1]:.1e}{'' if ok else '  MISMATCH'}")
    return failures


def bench_gpu() -> int:
    device = torch.device("cuda")
    print(f"GPU: {torch.cuda.get_device_name(device)}")
    print("checks against the twins:")
    failures = check_gpu(device)
    big = torch.empty(256 * 2**20, dtype=torch.uint8, device=device)
    copy_gbps = 2 * big.numel() / gpu_time_ms(lambda: big.clone()) / 1e6
    print(f"copy bandwidth: {copy_gbps:.0f} GB/s (read + write)\n")
    print(
        f"{'shape':>13} {'type':>5} {'dequant GB/s':>13} {'% copy':>7} {'x twin':>7} "
        f"{'GEMV GB/s':>10} {'% copy':>7} {'x twin':>7}"
    )
    for out_features, in_features in GPU_SHAPES:
        x = torch.randn(1, in_features, device=device, dtype=torch.bfloat16)
        for qtype in QUANTIZED:
            shape = (out_features, in_features)
            data = random_blocks(qtype, shape).to(device)
            weight = QuantizedWeight(qtype, data, shape)
            deq_ms = gpu_time_ms(lambda: dequantize_triton(data, qtype, shape))
            deq_twin = gpu_time_ms(lambda: dequantize_ref(data, qtype, shape))
            deq_gbps = (data.numel() + 4 * out_features * in_features) / deq_ms / 1e6
            gemv_ms = gpu_time_ms(lambda: quantized_linear_triton(x, weight))
            gemv_twin = gpu_time_ms(lambda: F.linear(x, dequantize_ref(data, qtype, shape).to(x.dtype)))
            gemv_gbps = data.numel() / gemv_ms / 1e6
            print(
                f"{out_features:>6}x{in_features:<6} {qtype.name:>5} {deq_gbps:13.0f} {deq_gbps / copy_gbps:7.0%} "
                f"{deq_twin / deq_ms:7.1f} {gemv_gbps:10.0f} {gemv_gbps / copy_gbps:7.0%} {gemv_twin / gemv_ms:7.1f}"
            )
    vocab = 128256
    print(f"\nsampler, vocab {vocab}: kernel ms (x twin on the GPU)")
    for batch in (1, 64):
        logits = torch.randn(batch, vocab, device=device) * 4
        for top_k, top_p in SAMPLING_CASES:
            p = sampling_params(batch, device, top_k, top_p)
            kernel = gpu_time_ms(lambda: sample_triton(logits, **p))
            twin = gpu_time_ms(lambda: sample_ref(logits, **p))
            print(f"  batch {batch:>3} top_k {top_k:>3} top_p {top_p:.1f}: {kernel:7.3f} ({twin / kernel:4.1f}x)")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run the CPU comparison even with a GPU")
    args = parser.parse_args()
    if args.cpu or not torch.cuda.is_available():
        if not args.cpu:
            print("No CUDA GPU: the GPU kernel benchmarks need one; running the CPU comparison.\n")
        bench_cpu()
        return 0
    return 1 if bench_gpu() else 0


if __name__ == "__main__":
    raise SystemExit(main())
