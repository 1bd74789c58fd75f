"""The batch-1 products of a Llama-8B decode step timed as a replayed step runs them: launched from a
device graph (no host launch cost) over distinct weight copies (a cold L2, as each layer's weights
are), for every configuration of the kernel's autotuning list and a few more, against the one the
autotuner picks and the vendor BLAS. Prints, per product, microseconds a call and TB/s, and the
products' time per token with the best and with the picked configurations. GPU only.

    python tools/bench_gemv_graph.py                    # every product
    python tools/bench_gemv_graph.py -k "gate/up" --budget 60
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

BF16 = torch.bfloat16
COLD_BYTES = 512 << 20  # weight bytes one pass of a graph cycles through: several times any L2


@dataclass
class Product:
    """One product of the decode step: `calls(copies)` builds one launch per weight copy."""

    name: str
    per_token: int
    n: int
    k: int
    tuned: object  # the Triton autotuner that runs it
    configs: list[tuple[int, int, int, int]]
    calls: Callable[[int], list[Callable[[], object]]]
    vendor: Callable[[int], list[Callable[[], object]]]


def graph_us(calls: list[Callable[[], object]], target: int = 96) -> float:
    """Microseconds a call: `calls` captured in one device graph (repeated to ~`target` launches),
    median of 5 replays."""
    for c in calls:
        c()
    torch.cuda.synchronize()
    reps = max(1, math.ceil(target / len(calls)))
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            for c in calls:
                c()
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        g.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times) * 1e3 / (reps * len(calls))


def products(device: torch.device) -> list[Product]:
    from max_kernels import gemv, qkv_rope, rotary
    from max_kernels.activations import silu_and_mul

    def weights(n: int, k: int, copies: int) -> list[torch.Tensor]:
        return [torch.randn(n, k, device=device, dtype=BF16) / k**0.5 for _ in range(copies)]

    def pending(k: int) -> gemv.PendingNorm:
        x = torch.randn(1, k, device=device, dtype=BF16)
        return gemv.PendingNorm(x, torch.ones(k, device=device, dtype=BF16), 1e-5)

    def plain(n, k, act=None, norm=False, residual=False):
        def calls(copies):
            x = pending(k) if norm else torch.randn(1, k, device=device, dtype=BF16)
            r = torch.randn(1, n // 2 if act else n, device=device, dtype=BF16) if residual else None
            return [lambda w=w: gemv.gemv_triton(x, w, None, act, r) for w in weights(n, k, copies)]
        return calls

    def vendor(n, k, act=None):
        def calls(copies):
            x = torch.randn(1, k, device=device, dtype=BF16)
            if act:
                return [lambda w=w: silu_and_mul(F.linear(x, w)) for w in weights(n, k, copies)]
            return [lambda w=w: F.linear(x, w) for w in weights(n, k, copies)]
        return calls

    def qkv_calls(copies, k=4096, hq=32, hk=8, d=128):
        x = pending(k)
        cache = rotary.rope_cos_sin_cache(d, 8192, 500000.0, None, device)
        kc = torch.zeros(64, 16, hk, d, device=device, dtype=BF16)
        vc = torch.zeros_like(kc)
        pos, slot = torch.tensor([100], device=device), torch.tensor([37], device=device)
        return [lambda w=w: qkv_rope.qkv_rope_store_triton(x, w, None, hq, hk, pos, cache, kc, vc, slot)
                for w in weights((hq + 2 * hk) * d, k, copies)]

    # the kernels' own lists, and a few that lost in an earlier sweep (for a device where they win)
    g = gemv._CONFIGS + [(8, 512, 4, 3), (8, 1024, 8, 3), (32, 256, 8, 3), (4, 1024, 8, 3)]
    q = qkv_rope._CONFIGS + [(2, 512, 4, 4), (4, 256, 4, 4), (8, 256, 4, 4)]
    return [  # most time first
        Product("gate/up + SiLU, norm in", 32, 28672, 4096, gemv._TUNED, g,
                plain(28672, 4096, "silu", norm=True), vendor(28672, 4096, "silu")),
        Product("down, residual out", 32, 4096, 14336, gemv._TUNED, g,
                plain(4096, 14336, residual=True), vendor(4096, 14336)),
        Product("QKV + RoPE + KV store, norm in", 32, 6144, 4096, qkv_rope._TUNED, q,
                qkv_calls, vendor(6144, 4096)),
        Product("o_proj, residual out", 32, 4096, 4096, gemv._TUNED, g,
                plain(4096, 4096, residual=True), vendor(4096, 4096)),
        Product("LM head, norm in", 1, 128256, 4096, gemv._TUNED, g,
                plain(128256, 4096, norm=True), vendor(128256, 4096)),
        Product("gate/up + SiLU", 32, 28672, 4096, gemv._TUNED, g,
                plain(28672, 4096, "silu"), vendor(28672, 4096, "silu")),
        Product("down", 32, 4096, 14336, gemv._TUNED, g, plain(4096, 14336), vendor(4096, 14336)),
        Product("QKV", 32, 6144, 4096, gemv._TUNED, g, plain(6144, 4096), vendor(6144, 4096)),
        Product("o_proj", 32, 4096, 4096, gemv._TUNED, g, plain(4096, 4096), vendor(4096, 4096)),
    ]


def with_configs(tuned, configs: list, run: Callable[[], float]) -> float:
    """`run()` with the autotuner limited to `configs` (one: no search), its own list restored after."""
    import triton

    saved = tuned.configs
    tuned.configs = [triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s) for n, k, w, s in configs]
    tuned.cache.clear()
    try:
        return run()
    finally:
        tuned.configs = saved
        tuned.cache.clear()


def sweep(prod: Product, deadline: float) -> tuple[float, float, float]:
    """Times `prod` with each configuration, the autotuner's pick and the vendor BLAS; prints them;
    returns (best, picked, vendor) microseconds a call."""
    from max_kernels import kernel_preferences, set_kernel_preferences

    nbytes = prod.n * prod.k * 2
    copies = max(2, math.ceil(COLD_BYTES / nbytes))
    calls = prod.calls(copies)
    prod.tuned.cache.clear()
    picked_us = graph_us(calls)  # the autotuner searches on the first call, outside the capture
    picked = prod.tuned.best_config
    vendor_us = graph_us(prod.vendor(copies))
    rows = []
    for cfg in prod.configs:
        if time.monotonic() > deadline:
            break
        try:
            rows.append((with_configs(prod.tuned, [cfg], lambda: graph_us(calls)), cfg))
        except Exception as e:  # a configuration that does not compile or fit: shown, not fatal
            print(f"  {cfg}: {type(e).__name__}: {str(e).splitlines()[0][:100]}")
    rows.sort()
    best_us, best = rows[0] if rows else (picked_us, None)
    pdl = kernel_preferences().pdl
    set_kernel_preferences(pdl=not pdl)
    other_us = with_configs(prod.tuned, [best], lambda: graph_us(prod.calls(copies))) if best else float("nan")
    set_kernel_preferences(pdl=pdl)
    tb = lambda us: nbytes / us / 1e6  # noqa: E731
    print(f"{prod.name} [{prod.n}x{prod.k}] x{prod.per_token}: picked {picked.kwargs} w{picked.num_warps} "
          f"s{picked.num_stages} {picked_us:.1f} us ({tb(picked_us):.2f} TB/s); best {best} {best_us:.1f} us "
          f"({tb(best_us):.2f} TB/s), {'without' if pdl else 'with'} PDL {other_us:.1f} us; vendor {vendor_us:.1f} us ({tb(vendor_us):.2f} TB/s)")
    for us, cfg in rows:
        print(f"    {us:7.1f} us {tb(us):5.2f} TB/s  {cfg}")
    return best_us, picked_us, vendor_us


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-k", default="", help="only products whose name contains this")
    p.add_argument("--budget", type=float, default=240.0, help="seconds; products not reached are skipped")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gemv_graph: needs a CUDA GPU (it times device graphs)", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    deadline = time.monotonic() + args.budget
    best_total = picked_total = vendor_total = 0.0
    for prod in products(device):
        if args.k not in prod.name:
            continue
        if time.monotonic() > deadline:
            print(f"{prod.name}: skipped (--budget)")
            continue
        try:
            best_us, picked_us, vendor_us = sweep(prod, deadline)
        except Exception as e:  # one product failing leaves the others measured
            print(f"{prod.name}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            continue
        if "," in prod.name or prod.name.startswith("LM"):  # the fused products a decode step runs
            best_total += best_us * prod.per_token
            picked_total += picked_us * prod.per_token
            vendor_total += vendor_us * prod.per_token
    print(f"fused products per token: best configurations {best_total / 1e3:.3f} ms, picked {picked_total / 1e3:.3f} ms, "
          f"vendor BLAS (products alone) {vendor_total / 1e3:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
