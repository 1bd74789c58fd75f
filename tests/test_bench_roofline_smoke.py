"""The roofline benchmark's smoke run (tiny shape, the CPU modes): it writes its model, runs every
mode through the engine and prints a positive rate in each row."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "tools" / "bench_decode_roofline.py"


def test_bench_roofline_smoke_prints_a_row_per_mode(tmp_path):
    cmd = [sys.executable, str(BENCH), "--smoke", "--devices", "cpu", "--workdir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[2:] if line[:1].isalpha()}
    for mode in ("eager", "multistep", "overlap"):
        decode, gbs, _, ms, total, build = (float(x.rstrip("%")) for x in rows[mode][:6])
        assert decode > 0 and gbs > 0 and total > 0 and build >= 0 and abs(ms - 1000 / decode) < 0.01
    assert (tmp_path / "max-roofline-tiny" / "done").exists()
