"""The native CPU decode step (decode.c): built once per machine, loaded with ctypes.

The library is compiled with the system C compiler for this CPU (`-O3 -fopenmp -march=native`) and
cached under `~/.cache/max/native`, keyed by the source, the compiler and the CPU's features; a later
start loads it in milliseconds. OpenMP resolves to the runtime torch already loaded, so the step's
threads are torch's (`torch.set_num_threads`); a compiler without OpenMP builds a one-thread library.
Without a C compiler, or with `MAX_NATIVE_CPU=0`, there is no library and the PyTorch path runs.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("decode.c")
FLAGS = ["-O3", "-fopenmp", "-shared", "-fPIC", "-std=c11"]


def cache_dir() -> Path:
    """`$MAX_CACHE_DIR/native`, default `~/.cache/max/native` (honours XDG_CACHE_HOME), as the tokenizer cache."""
    base = os.environ.get("MAX_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "max"
    return Path(base) / "native"


def _cpu_features() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def _library_path(compiler: str, flags: list[str]) -> Path:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.blake2b(
        "\0".join([SOURCE.read_text(), " ".join(flags), version, platform.machine(), _cpu_features()]).encode(),
        digest_size=12,
    ).hexdigest()
    return cache_dir() / f"decode-{key}.so"


@cache
def build(march: str = "native") -> ctypes.CDLL | None:
    """The library compiled for `-march=<march>` (tests also build the AVX2-only and baseline
    variants), or None where it cannot be built."""
    if os.environ.get("MAX_NATIVE_CPU", "1") == "0":
        return None
    flags = [*FLAGS, f"-march={march}"]
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.info("no C compiler: the CPU decode step runs in PyTorch")
        return None
    try:
        import torch  # noqa: F401  (loads the OpenMP runtime the library then shares)

        path = _compile(compiler, flags) or _compile(compiler, [f for f in flags if f != "-fopenmp"])
        return None if path is None else ctypes.CDLL(str(path))
    except OSError as e:
        log.info("the native CPU decode step is unavailable: %s", e)
        return None


def _compile(compiler: str, flags: list[str]) -> Path | None:
    """The cached library for `flags`, compiled first if need be (without `-fopenmp`, one thread)."""
    path = _library_path(compiler, flags)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        out = Path(tmp) / path.name
        proc = subprocess.run([compiler, *flags, str(SOURCE), "-o", str(out), "-lm"], capture_output=True, text=True)
        if proc.returncode != 0:
            log.info("building the native CPU decode step with %s failed: %s", flags, proc.stderr[-2000:])
            return None
        os.replace(out, path)  # atomic: concurrent builders leave one whole file
    return path


_executor = ThreadPoolExecutor(max_workers=1)
_pending: Future | None = None


def start_build() -> None:
    """Start building (or finding) the library in the background, e.g. while weights load."""
    global _pending
    if _pending is None:
        _pending = _executor.submit(build)


@cache
def library() -> ctypes.CDLL | None:
    """The loaded library, or None where it cannot be built."""
    start_build()
    return _pending.result()
