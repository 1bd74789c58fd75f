"""Kernel benchmark: each Triton kernel against the GPU's copy bandwidth and against its PyTorch twin.

For every registered case: check the kernel against its twin on the GPU (bf16, the dtype models
run in), then time both with `triton.testing.do_bench` and print the achieved GB/s (as a share of
the measured device-to-device copy bandwidth) or TFLOP/s, and the speed-up over the twin.

    uv run python tools/bench_kernels.py                 # every case
    uv run python tools/bench_kernels.py -k attention    # cases whose name contains "attention"
    TRITON_INTERPRET=1 uv run python tools/bench_kernels.py --smoke   # tiny shapes, checks only (runs on CPU)

Other kernel modules add cases with `register(KernelCase(...))` (see the cases below).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class KernelCase:
    """One benchmark: `setup(device)` builds the inputs once; `kernel(**inputs)` and `twin(**inputs)` run.

    `mutated` names the inputs an in-place op writes: those are compared instead of the return value.
    """

    name: str
    setup: Callable[[torch.device], dict[str, Any]]
    kernel: Callable[..., Any]
    twin: Callable[..., Any]
    bytes_moved: Callable[[dict[str, Any]], int]
    flops: Callable[[dict[str, Any]], int] | None = None
    tolerance: float = 2e-2
    mutated: tuple[str, ...] = ()


CASES: list[KernelCase] = []


def register(case: KernelCase) -> KernelCase:
    CASES.append(case)
    return case


def _nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _register_core_cases(smoke: bool) -> None:
    from max_kernels import activations, attention, fp8, gemv, kv_store, norms, qkv_rope, rotary
    from max_kernels.rope_store import rope_kv_store_ref, rope_kv_store_triton

    t, h, f, ctx, n = (4096, 4096, 14336, 4096, 1 << 26) if not smoke else (40, 96, 80, 50, 3000)
    BF16 = torch.float16 if smoke else torch.bfloat16  # Triton's interpreter miscomputes bfloat16

    def norm_inputs(device):
        g = torch.Generator(device).manual_seed(0)
        x = torch.randn(t, h, device=device, generator=g, dtype=BF16)
        return {
            "x": x,
            "weight": torch.randn(h, device=device, dtype=BF16),
            "eps": 1e-6,
            "residual": torch.randn_like(x),
        }

    register(
        KernelCase(
            f"rms_norm+residual [{t}x{h}]",
            norm_inputs,
            norms.rms_norm_triton,
            norms.rms_norm_ref,
            lambda a: 4 * _nbytes(a["x"]),
        )
    )
    register(
        KernelCase(
            f"layer_norm [{t}x{h}]",
            lambda d: {
                **{k: v for k, v in norm_inputs(d).items() if k != "residual"},
                "bias": torch.randn(h, device=d, dtype=BF16),
            },
            norms.layer_norm_triton,
            norms.layer_norm_ref,
            lambda a: 2 * _nbytes(a["x"]),
        )
    )

    def rope_inputs(device):
        return {
            "q": torch.randn(t, 32, 128, device=device, dtype=BF16),
            "k": torch.randn(t, 8, 128, device=device, dtype=BF16),
            "positions": torch.randint(0, 8192, (t,), device=device),
            "cos_sin_cache": rotary.rope_cos_sin_cache(128, 8192, 500000.0, None, device),
            "neox": True,
        }

    register(
        KernelCase(
            f"apply_rope [{t} tok, 32q/8k heads, D128]",
            rope_inputs,
            rotary.apply_rope_triton,
            rotary.apply_rope_ref,
            lambda a: 2 * _nbytes(a["q"], a["k"]),
        )
    )

    def store_inputs(device):
        k_cache = torch.zeros(-(-t // 16) + 1, 16, 8, 128, device=device, dtype=BF16)
        return {
            "key": torch.randn(t, 8, 128, device=device, dtype=BF16),
            "value": torch.randn(t, 8, 128, device=device, dtype=BF16),
            "k_cache": k_cache,
            "v_cache": torch.zeros_like(k_cache),
            "slot_mapping": torch.randperm(t, device=device) + 16,
        }

    register(
        KernelCase(
            f"store_kvcache [{t} tok, 8 heads, D128, P16]",
            store_inputs,
            kv_store.store_kvcache_triton,
            kv_store.store_kvcache_ref,
            lambda a: 2 * _nbytes(a["key"], a["value"]),
            mutated=("k_cache", "v_cache"),
        )
    )

    def rope_store_inputs(device):
        rope, store = rope_inputs(device), store_inputs(device)
        return {
            **{name: rope[name] for name in ("q", "k", "positions", "cos_sin_cache", "neox")},
            "v": store["value"],
            **{name: store[name] for name in ("k_cache", "v_cache", "slot_mapping")},
            "k_scale": None,
            "v_scale": None,
        }

    register(
        KernelCase(
            f"rope_kv_store [{t} tok, 32q/8k heads, D128, P16]",
            rope_store_inputs,
            rope_kv_store_triton,
            rope_kv_store_ref,
            lambda a: 2 * _nbytes(a["q"], a["k"], a["v"]),
            mutated=("k_cache", "v_cache"),
        )
    )

    def gated_inputs(device):
        return {"x": torch.randn(t, 2 * f, device=device, dtype=BF16)}

    register(
        KernelCase(
            f"silu_and_mul [{t}x2x{f}]",
            gated_inputs,
            activations.silu_and_mul_triton,
            activations.silu_and_mul_ref,
            lambda a: _nbytes(a["x"]) * 3 // 2,
        )
    )
    register(
        KernelCase(
            f"gelu_tanh_and_mul [{t}x2x{f}]",
            gated_inputs,
            activations.gelu_tanh_and_mul_triton,
            activations.gelu_tanh_and_mul_ref,
            lambda a: _nbytes(a["x"]) * 3 // 2,
        )
    )

    register(
        KernelCase(
            f"quantize_fp8 [{n}]",
            lambda d: {"x": torch.randn(n, device=d, dtype=BF16), "scale": torch.tensor(0.05, device=d)},
            fp8.quantize_fp8_triton,
            fp8.quantize_fp8_ref,
            lambda a: a["x"].numel() * 3,
            tolerance=0.0,
        )
    )
    register(
        KernelCase(
            f"dequantize_fp8 [{n}]",
            lambda d: {
                "x": torch.randn(n, device=d).to(torch.float8_e4m3fn),
                "scale": torch.tensor(0.05, device=d),
                "dtype": BF16,
            },
            fp8.dequantize_fp8_triton,
            fp8.dequantize_fp8_ref,
            lambda a: a["x"].numel() * 3,
            tolerance=0.0,
        )
    )

    def gemv_inputs(device, n, k, act=None):
        g = torch.Generator(device).manual_seed(0)
        return {
            "x": torch.randn(1, k, device=device, generator=g, dtype=BF16),
            "weight": torch.randn(n, k, device=device, generator=g, dtype=BF16) / k**0.5,
            "act": act,
        }

    shapes = [(6144, 4096, None), (4096, 4096, None), (28672, 4096, "silu"), (4096, 14336, None)]
    for n, k, act in shapes if not smoke else [(48, 160, None), (64, 96, "silu")]:
        register(
            KernelCase(
                f"gemv batch 1 [{n}x{k}{', ' + act if act else ''}]",
                lambda d, n=n, k=k, act=act: gemv_inputs(d, n, k, act),
                gemv.gemv_triton,
                gemv.gemv_ref,
                lambda a: _nbytes(a["weight"]),
            )
        )

    def fused_gemv_inputs(device, n, k, act, role):
        """`role` "norm": the input is a PendingNorm; "residual": the output is added to a residual."""
        a = gemv_inputs(device, n, k, act)
        if role == "norm":
            a["x"] = gemv.PendingNorm(a["x"], torch.ones(k, device=device, dtype=BF16), 1e-5)
        else:
            a["residual"] = torch.randn(1, n, device=device, dtype=BF16)
        return a

    def qkv_rope_inputs(device, k=4096, hq=32, hk=8, head_dim=128):
        a = gemv_inputs(device, (hq + 2 * hk) * head_dim, k)
        return {
            "x": a["x"], "weight": a["weight"], "bias": None, "num_q_heads": hq, "num_kv_heads": hk,
            "positions": torch.tensor([100], device=device),
            "cos_sin_cache": rotary.rope_cos_sin_cache(head_dim, 8192, 500000.0, None, device),
            "k_cache": torch.zeros(4, 16, hk, head_dim, device=device, dtype=BF16),
            "v_cache": torch.zeros(4, 16, hk, head_dim, device=device, dtype=BF16),
            "slot_mapping": torch.tensor([37], device=device),
        }

    register(
        KernelCase(
            f"gemv batch 1, QKV + RoPE + KV store [{'96x64' if smoke else '6144x4096, 32q/8k, D128'}]",
            qkv_rope_inputs if not smoke else (lambda dev: qkv_rope_inputs(dev, k=64, hq=4, hk=2, head_dim=16)),
            qkv_rope.qkv_rope_store_triton,
            qkv_rope.qkv_rope_store_ref,
            lambda a: _nbytes(a["weight"]),
            mutated=("k_cache", "v_cache"),
        )
    )

    fused = [(6144, 4096, None, "norm"), (28672, 4096, "silu", "norm"), (4096, 4096, None, "residual"),
             (4096, 14336, None, "residual")]
    for n, k, act, role in fused if not smoke else [(48, 160, None, "norm"), (64, 96, None, "residual")]:
        register(
            KernelCase(
                f"gemv batch 1, {'norm in' if role == 'norm' else 'residual out'} [{n}x{k}{', ' + act if act else ''}]",
                lambda d, n=n, k=k, act=act, role=role: fused_gemv_inputs(d, n, k, act, role),
                gemv.gemv_triton,
                gemv.gemv_ref,
                lambda a: _nbytes(a["weight"]),
            )
        )

    def paged_inputs(device, q_lens, kv_lens, page, hq=32, hk=8, d=128):
        blocks_per_req = [math.ceil(n / page) for n in kv_lens]
        num_blocks = sum(blocks_per_req) + 1
        tables = torch.zeros(len(kv_lens), max(blocks_per_req), dtype=torch.int32)
        order = torch.randperm(num_blocks - 1) + 1
        start = 0
        for i, nb in enumerate(blocks_per_req):
            tables[i, :nb] = order[start : start + nb]
            start += nb
        k_cache = torch.randn(num_blocks, page, hk, d, device=device, dtype=BF16)
        return {
            "q": torch.randn(sum(q_lens), hq, d, device=device, dtype=BF16),
            "k_cache": k_cache,
            "v_cache": torch.randn_like(k_cache),
            "cu_seqlens_q": torch.tensor([0, *q_lens], device=device).cumsum(0).to(torch.int32),
            "seq_lens": torch.tensor(kv_lens, dtype=torch.int32, device=device),
            "block_tables": tables.to(device),
            "scale": d**-0.5,
            "max_seqlen_q": max(q_lens),
        }

    def kv_bytes(a):
        hk, d = a["k_cache"].shape[2:]
        return int(a["seq_lens"].sum()) * hk * d * 2 * a["k_cache"].element_size() + 2 * _nbytes(a["q"])

    def attention_flops(a):
        hq, d = a["q"].shape[1:]
        q_lens = (a["cu_seqlens_q"][1:] - a["cu_seqlens_q"][:-1]).tolist()
        pairs = sum(q * kv - q * (q - 1) // 2 for q, kv in zip(q_lens, a["seq_lens"].tolist()))
        return 4 * pairs * hq * d

    for batch, kv_len, page in [(64, ctx, 16), (8, 8 * ctx, 16), (64, ctx, 1), (64, ctx, 256)]:
        register(
            KernelCase(
                f"paged decode [B{batch}, {kv_len} ctx, 32q/8k, D128, P{page}]",
                lambda d, b=batch, n=kv_len, p=page: paged_inputs(d, [1] * b, [n] * b, p),
                attention.paged_attention_triton,
                attention.paged_attention_ref,
                kv_bytes,
            )
        )
    register(
        KernelCase(
            f"paged prefill [4 x {ctx // 2} new, {ctx // 2} cached, P16]",
            lambda d: paged_inputs(d, [ctx // 2] * 4, [ctx] * 4, 16),
            attention.paged_attention_triton,
            attention.paged_attention_ref,
            kv_bytes,
            flops=attention_flops,
        )
    )


def copy_bandwidth(device: torch.device) -> float:
    """Device-to-device copy bandwidth in GB/s (read + write) of a 1 GiB tensor."""
    import triton.testing

    src = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src))
    return 2 * src.numel() / ms / 1e6


def _check(case: KernelCase, got: Any, want: Any) -> None:
    got_list = got if isinstance(got, tuple) else (got,)
    want_list = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got_list, want_list):
        if g is None:
            continue
        torch.testing.assert_close(g.float(), w.float(), rtol=case.tolerance, atol=case.tolerance)


def run_case(case: KernelCase, device: torch.device, copy_gbs: float, smoke: bool) -> str:
    import triton.testing

    inputs = case.setup(device)
    if case.mutated:
        twin_inputs = {**inputs, **{name: inputs[name].clone() for name in case.mutated}}
        case.twin(**twin_inputs)
        case.kernel(**inputs)
        _check(case, tuple(inputs[m] for m in case.mutated), tuple(twin_inputs[m] for m in case.mutated))
    else:
        _check(case, case.kernel(**inputs), case.twin(**inputs))
    if smoke:
        return f"{case.name:<52} matches its twin"
    kernel_ms = triton.testing.do_bench(lambda: case.kernel(**inputs))
    twin_ms = triton.testing.do_bench(lambda: case.twin(**inputs))
    gbs = case.bytes_moved(inputs) / kernel_ms / 1e6
    rate = f"{gbs:8.0f} GB/s ({100 * gbs / copy_gbs:3.0f}% of copy)"
    if case.flops is not None:
        rate += f"  {case.flops(inputs) / kernel_ms / 1e9:6.1f} TFLOP/s"
    return (
        f"{case.name:<52} {kernel_ms * 1e3:9.1f} us  {rate}  twin {twin_ms * 1e3:9.1f} us  x{twin_ms / kernel_ms:5.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--filter", default="", help="run only cases whose name contains this text")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, correctness checks only")
    args = parser.parse_args(argv)
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif args.smoke and os.environ.get("TRITON_INTERPRET") == "1":
        device = torch.device("cpu")
    else:
        print(
            "bench_kernels: no CUDA GPU found; the Triton kernels are only benchmarked on a GPU "
            "(TRITON_INTERPRET=1 with --smoke checks them on the CPU).",
            file=sys.stderr,
        )
        return 1
    _register_core_cases(args.smoke)
    copy_gbs = 0.0 if args.smoke else copy_bandwidth(device)
    if not args.smoke:
        print(f"{torch.cuda.get_device_name(device)}: copy bandwidth {copy_gbs:.0f} GB/s")
    failures = 0
    for case in CASES:
        if args.filter in case.name:
            try:
                print(run_case(case, device, copy_gbs, args.smoke), flush=True)
            except AssertionError as error:
                failures += 1
                print(f"{case.name:<52} MISMATCH against the twin: {str(error).splitlines()[0]}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
