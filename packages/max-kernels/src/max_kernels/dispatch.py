"""Which implementation an op runs: the Triton kernel for CUDA tensors, the PyTorch twin otherwise.

`set_kernel_preferences` is called once from the runtime flags. `--use-experimental-kernels` lets
ops whose Triton kernel is marked experimental (`use_triton(t, experimental=True)`) run it; without
the flag those ops run their twin on the GPU too. `--use-vendor-blas` sends matrix products to the
vendor BLAS (`torch.matmul`, cuBLAS) instead of Triton matmul kernels.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache

import torch


@dataclass
class KernelPreferences:
    experimental: bool = False
    vendor_blas: bool = False
    fused_products: bool = True  # batch-1 products take the norms, residual adds and RoPE around them
    pdl: bool = True  # batch-1 products use programmatic dependent launch (see use_pdl)


_preferences = KernelPreferences()


def set_kernel_preferences(
    experimental: bool = False,
    vendor_blas: bool = False,
    fused_products: bool | None = None,
    pdl: bool | None = None,
) -> None:
    """Set from `--use-experimental-kernels` and `--use-vendor-blas`. `fused_products=False` keeps the
    norms, residual adds and RoPE in kernels of their own, `pdl=True` turns on programmatic dependent
    launch: both for measuring what they change (None: left as it is)."""
    _preferences.experimental = experimental
    _preferences.vendor_blas = vendor_blas
    if fused_products is not None:
        _preferences.fused_products = fused_products
    if pdl is not None:
        _preferences.pdl = pdl


def kernel_preferences() -> KernelPreferences:
    return _preferences


class _MissingTriton:
    """Stands in for `triton` and `triton.language` where Triton is not installed or not needed.

    Kernels still get defined (the decorator returns the function), but are never launched because
    `use_triton` is then False.
    """

    constexpr = None

    @staticmethod
    def jit(fn=None, **_kwargs):
        return fn if fn is not None else (lambda f: f)

    def __getattr__(self, name):
        raise RuntimeError(f"Triton is not installed (needed for triton.{name})")


@cache
def triton_available() -> bool:
    """True when Triton is installed and wanted: a CUDA device or the CPU interpreter
    (`TRITON_INTERPRET=1`) can launch its kernels, or the caller imported it already (to compile
    kernels ahead of time). Otherwise Triton is not imported at all (~0.25 s of start-up)."""
    wanted = os.environ.get("TRITON_INTERPRET") == "1" or "triton" in sys.modules
    if not wanted and not torch.cuda.is_available():
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def import_triton():
    """Return `(triton, triton.language)`, or stand-ins when Triton is missing."""
    if not triton_available():
        return _MissingTriton(), _MissingTriton()
    import triton
    import triton.language as tl

    return triton, tl


def use_triton(t: torch.Tensor, experimental: bool = False) -> bool:
    """True when `t` lives on a CUDA device (and, for an experimental kernel, when those are enabled);
    see `_triton_on_cpu` for the interpreter."""
    if experimental and not _preferences.experimental:
        return False
    return (t.is_cuda or _triton_on_cpu()) and triton_available()


@cache
def _triton_on_cpu() -> bool:
    """`MAX_TRITON_ON_CPU=1` with `TRITON_INTERPRET=1`: CPU tensors take the Triton kernels too, run by
    Triton's interpreter, so the GPU code path of a whole model can be checked on a machine without one."""
    return os.environ.get("MAX_TRITON_ON_CPU") == "1" and os.environ.get("TRITON_INTERPRET") == "1"


def use_pdl(t: torch.Tensor) -> bool:
    """Programmatic dependent launch for a kernel on `t`'s device: the kernel may be launched while the
    one before it still runs (hiding the launch gap of a replayed graph) and waits inside, before it
    reads or writes anything, until that kernel has finished. Needs compute capability 9.0 and
    `pdl` set (the default: +1.4% batch-1 decode on Llama-8B, tools/README.md)."""
    return _preferences.pdl and t.is_cuda and _capability(t.device.index or 0) >= (9, 0)


@cache
def _capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def use_vendor_blas() -> bool:
    """True when matrix products should go to the vendor BLAS (torch.matmul) rather than Triton."""
    return _preferences.vendor_blas


_GRAPH_STEP: ContextVar[bool] = ContextVar("graph_step", default=False)


@contextmanager
def graph_step() -> Iterator[None]:
    """Marks the code run to capture a device graph (its warm-up runs too). Kernels whose host-side
    launch costs more than they save on the device (Triton's launcher takes tens of microseconds a
    call) run only there, where replay makes the launch free."""
    token = _GRAPH_STEP.set(True)
    try:
        yield
    finally:
        _GRAPH_STEP.reset(token)


def in_graph_step() -> bool:
    return _GRAPH_STEP.get()
