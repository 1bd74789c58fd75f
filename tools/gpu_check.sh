#!/usr/bin/env bash
# Everything that needs a GPU, in one run, on an interpreter that already has torch, triton and
# transformers (the workspace's packages are put on PYTHONPATH): the GPU tests, the kernels against
# their twins with timings, then decode at the roofline. On a machine without a network, wheels of
# what it lacks (for example pydantic, pydantic-core, annotated-types, typing-inspection, gguf,
# redis) can be put in .whl/ beforehand: they are installed into /tmp/site first.
#
#     bash tools/gpu_check.sh [roofline modes]      # e.g. graphs,graphs+overlap
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH="$(ls -d packages/*/src | paste -sd:)${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1
$PY - <<'PY'
import importlib.util
missing = [m for m in ("torch", "triton", "transformers", "safetensors", "tokenizers", "pydantic", "gguf", "click", "yaml", "jinja2", "tqdm")
           if importlib.util.find_spec(m) is None]
print("missing modules:", ", ".join(missing) or "none")
import torch
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
PY
status=0
$PY -m pytest -q -p no:cacheprovider packages/max-pipelines/tests/test_engine_device_graphs.py \
    packages/max-config/tests/test_devices.py || status=1
$PY tools/bench_kernels.py || status=1
$PY tools/bench_decode_roofline.py ${1:+--modes "$1"} || status=1
exit $status
