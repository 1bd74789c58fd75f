#!/usr/bin/env bash
# Everything that needs a GPU, in one run, on an interpreter that already has torch, triton and
# transformers (the workspace's packages are put on PYTHONPATH). Steps run most important first,
# each under its own time limit, so a slow or failing step costs only itself:
#   1. the model folder of the roofline benchmark (Llama-8B shape, random bf16 weights)
#   2. the roofline benchmark's default mode (graphs + overlap) with a per-kernel profile
#   3. the GPU tests (device graphs vs eager, each architecture vs transformers)
#   4. the other roofline modes, one process each (what the fused norms, programmatic dependent launch
#      and the batch-1 kernel change; eager with a per-kernel profile)
#   5. the kernel benchmarks (the batch-1 products as a replayed step runs them; every Triton kernel
#      against its twin, the GGUF block types checked first)
# On a machine without a network, wheels of what the interpreter lacks (for example pydantic,
# pydantic-core, annotated-types, typing-inspection, gguf, redis) can be put in .whl/ beforehand:
# they are installed into /tmp/site first. Logs go to $GPU_CHECK_LOGS (default /tmp/gpu-check).
# GPU_CHECK_QUICK=1 stops after step 4's A/B modes (about half the time), for a rerun after a fix.
#
#     bash tools/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOGS=${GPU_CHECK_LOGS:-/tmp/gpu-check}
mkdir -p "$LOGS"
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH="$(ls -d packages/*/src | paste -sd:)${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TQDM_DISABLE=1
status=0

step() {  # step NAME LIMIT_S LOG COMMAND...: run with a time limit, append to LOG, note failures
    local name=$1 limit=$2 log=$3
    shift 3
    echo "== $(date -u +%T) $name" | tee -a "$LOGS/$log"
    timeout "$limit" "$@" 2>&1 | tee -a "$LOGS/$log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { status=1; echo "== $name: exit $rc$([ "$rc" = 124 ] && echo ' (time limit)')" | tee -a "$LOGS/$log"; }
}

step environment 60 env.log $PY - <<'PY'
import importlib.util
missing = [m for m in ("torch", "triton", "transformers", "safetensors", "tokenizers", "pydantic", "gguf", "click",
                       "yaml", "jinja2", "tqdm", "xxhash", "redis", "pytest") if importlib.util.find_spec(m) is None]
print("missing modules:", ", ".join(missing) or "none")
import torch, triton, transformers
print("torch", torch.__version__, "triton", triton.__version__, "transformers", transformers.__version__)
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
PY
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv 2>&1 | tee -a "$LOGS/env.log"

ROOF="$PY tools/bench_decode_roofline.py"
step "roofline model folder" 240 roofline.log $ROOF --write-only
step "roofline graphs+overlap" 240 roofline.log $ROOF --modes graphs+overlap --profile
# TRITON_INTERPRET=0: the test configuration would otherwise pick Triton's CPU interpreter.
step "GPU tests" 300 tests.log env TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider \
    packages/max-pipelines/tests/test_engine_device_graphs.py packages/max-pipelines/tests/test_models_gpu_parity.py \
    packages/max-config/tests/test_devices.py
for mode in graphs+overlap+unfused graphs+overlap+no-pdl graphs graphs+overlap+vendor-blas; do
    step "roofline $mode" 120 roofline.log $ROOF --modes "$mode" --no-header
done
if [ "${GPU_CHECK_QUICK:-0}" = 1 ]; then  # a rerun after a fix: the default mode, the tests, the A/B modes
    echo "== GPU_CHECK_QUICK=1: the remaining steps are skipped"
else
step "roofline eager" 120 roofline.log $ROOF --modes eager --profile --no-header
step "batch-1 products in a device graph" 150 kernels.log $PY tools/bench_gemv_graph.py --budget 120
for mode in graphs+multistep overlap multistep; do
    step "roofline $mode" 120 roofline.log $ROOF --modes "$mode" --no-header
done
# as a Llama-3-8B config runs by default: attention and block tables padded to 8192 positions in the graphs
step "roofline graphs+overlap, max length 8192" 120 roofline.log $ROOF --modes graphs+overlap --max-length 8192
step "GGUF and sampling kernels" 150 kernels.log $PY tools/bench_kernels_gguf_sampling.py
step "kernels" 150 kernels.log $PY tools/bench_kernels.py
fi
echo "== $(date -u +%T) done, status $status"
echo "== summary: roofline rows (mode, tok/s b=1, GB/s, % of copy, ms/token, tok/s batch, build s), tests, failed steps"
grep -h -E "^(graphs|eager|overlap|multistep)|roofline [0-9]" "$LOGS/roofline.log" 2>/dev/null
grep -h -E "[0-9]+ (passed|failed)" "$LOGS/tests.log" 2>/dev/null | tail -1
grep -h -E "^== .*: exit" "$LOGS"/*.log 2>/dev/null
exit $status
