"""Blocks on disk survive the process and are shared safely between processes."""

import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("tiered_worker.py")


def _start(directory, num_tokens):
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(directory), "model-a", str(num_tokens)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _result(proc):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out.strip()


def test_processes_share_a_tiered_directory(tmp_path):
    """Two processes write the same blocks at once; a third, later one loads them instead of recomputing."""
    writers = [_start(tmp_path, 18) for _ in range(2)]
    # a writer may already hit some leading blocks of the other one; whatever it loads must be exact
    allowed = {f"hit={hit} ok=True corrupt=0" for hit in (0, 4, 8, 12, 16)}
    assert {_result(w) for w in writers} <= allowed
    assert not list(tmp_path.rglob("*.tmp")) and len(list(tmp_path.rglob("*.kvb"))) == 4
    assert _result(_start(tmp_path, 19)) == "hit=16 ok=True corrupt=0"
