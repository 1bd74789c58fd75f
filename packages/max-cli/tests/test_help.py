"""`max generate --help` lists every flag of the spec with its help and default; no torch needed."""

import subprocess
import sys
from pathlib import Path

from max_config import generate_flags

SPEC_FLAGS = (Path(__file__).parents[2] / "max-config" / "tests" / "spec_flags.txt").read_text().split()


def normalised(text: str) -> str:
    return " ".join(text.split())


def test_help_lists_every_spec_flag_with_help_and_default(invoke):
    result = invoke("generate", "--help")
    assert result.exit_code == 0
    text = normalised(result.output)
    for flag in SPEC_FLAGS:
        assert f" {flag} " in text or f" {flag}/" in text or f" {flag}," in text, flag
    squeezed = "".join(text.split())  # click may wrap lines after a hyphen
    for spec in generate_flags():
        assert "".join(f"{spec.help} [default: {spec.default_text}]".split()) in squeezed, spec.name


def test_group_help_names_generate(invoke):
    result = invoke("--help")
    assert result.exit_code == 0 and "generate" in result.output


def test_help_and_flag_errors_do_not_import_torch():
    code = (
        "import sys\n"
        "from max_cli.main import cli\n"
        "for args in (['generate', '--help'], ['generate', '--top-k', 'x'], ['generate', '--temperature', '-1']):\n"
        "    try:\n"
        "        cli.main(args, prog_name='max')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "False"
