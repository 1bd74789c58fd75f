"""`max generate` end to end in a subprocess on the default model (the embedded SmolLM2 GGUF)."""

import subprocess
import sys
from pathlib import Path


def test_generate_streams_english_text_and_reports():
    cmd = [str(Path(sys.executable).parent / "max"), "generate", "--prompt", "What is the capital of France?",
           "--max-new-tokens", "16", "--temperature", "0", "--devices", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    words = [w for w in proc.stdout.split() if w.isalpha()]
    assert len(words) >= 3, proc.stdout
    assert "Paris" in proc.stdout
    for line in ("Prompt size:", "Output size:", "Time to first token:", "Eval throughput:", "Stop reason:"):
        assert line in proc.stderr
    assert "Prompt size:" not in proc.stdout
