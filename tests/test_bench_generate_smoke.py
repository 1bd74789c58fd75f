"""The generation benchmark's smoke run on our engine alone (a few seconds): it must run and print a
table with a finite, positive figure in every row."""

import math
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "tools" / "bench_generate.py"


def test_bench_generate_smoke_prints_the_table_for_our_engine():
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--peers", "ours", "--smoke"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line[:28].strip(): line[28:].split() for line in proc.stdout.splitlines() if len(line) > 28}
    for label in ("load s", "cold start s", "TTFT ms", "decode tok/s (b=1)", "total tok/s (2 prompts)"):
        value = float(rows[label][0])
        assert math.isfinite(value) and value > 0, (label, proc.stdout)
