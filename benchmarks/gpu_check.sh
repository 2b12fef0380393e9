#!/usr/bin/env bash
# GPU check of issue 37 (GPU only; not run yet): one script for a lent GPU machine (one H100 80 GB or H200, 16 CPU
# cores, no network), at most 7.5 minutes with the default limits (430 s of parts). Run from the repository root:
#
#     bash benchmarks/gpu_check.sh            # JSON into ${OUT:-docs/results}, as gpu_check_*.json (+ *.log)
#
# Parts, each in its own process under `timeout` (a hang or failure loses only that part):
#   card          nvidia-smi --query-gpu=name,memory.total, torch.cuda.get_device_name(), package versions
#   real_size     benchmarks/real_size.py --device cuda --sections run_480p: the real 1.3B (random bf16 weights) at
#                 480x832x81, 4 text-to-video steps (CFG) and 4 captioning steps (video_cache "exact"), peak
#                 torch.cuda.max_memory_allocated per mode, then one text-to-video step with fp8 layerwise casting
#   group_offload benchmarks/group_offload.py --device cuda: block/leaf level, with and without CUDA streams, disk
#   toolbox       benchmarks/toolbox.py --device cuda: regional compilation (inductor) vs eager, torchao int8 if there
#   cache_hooks   benchmarks/cache_hooks.py --device cuda --quick: diffusers' cache hooks (a smoke-size run)
# and last gpu_check_summary.json: every part, its exit status (124: timed out) and seconds.
#
# Python: $PYTHON, else .venv/bin/python when its torch sees CUDA, else python3. The repository's src/ goes on
# PYTHONPATH. Wheels of packages the machine lacks (its image has torch and transformers but no diffusers) can travel
# in .whl/ (see /work/.library/device/README.md): they are installed into /tmp/site first, e.g. diffusers 0.42.1 and
# importlib_metadata. Limits (seconds) can be changed with TIMEOUT_<PART>, e.g. TIMEOUT_REAL_SIZE=240.
set -euo pipefail

cd "$(dirname "$0")/.."
DEST="${OUT:-docs/results}"
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if [ -d .whl ] && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site" || echo "[gpu_check] installing .whl/ failed" >&2
fi
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
        PYTHON=.venv/bin/python
    else
        PYTHON=python3
    fi
fi
echo "[gpu_check] python: $PYTHON, results: $DEST" >&2

PARTS=()
START_ALL=$SECONDS

# run_part NAME LIMIT_SECONDS COMMAND...: runs COMMAND under timeout, output to $DEST/gpu_check_NAME.log.
run_part() {
    local name=$1 limit=$2
    shift 2
    local log="$DEST/gpu_check_$name.log" start=$SECONDS rc=0
    echo "[gpu_check] $name (limit ${limit}s): $*" >&2
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1 || rc=$?
    local seconds=$((SECONDS - start))
    echo "[gpu_check] $name: exit $rc in ${seconds}s" >&2
    tail -n 5 "$log" >&2 || true
    PARTS+=("{\"part\": \"$name\", \"exit_code\": $rc, \"timed_out\": $([ "$rc" = 124 ] || [ "$rc" = 137 ] && echo true || echo false), \"seconds\": $seconds, \"limit_seconds\": $limit, \"log\": \"gpu_check_$name.log\"}")
}

card() {
    local smi
    smi=$(nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1) || smi="nvidia-smi failed: $smi"
    echo "$smi"
    NVIDIA_SMI="$smi" "$PYTHON" - "$DEST/gpu_check_card.json" <<'EOF'
import importlib.metadata, json, os, platform, sys

import torch

info = {"nvidia_smi": os.environ["NVIDIA_SMI"].splitlines(), "python": platform.python_version(),
        "torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    info["torch_device_name"] = torch.cuda.get_device_name()
    info["torch_total_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 1e9, 2)
for package in ("diffusers", "transformers", "accelerate", "peft", "safetensors", "torchao", "triton"):
    try:
        info[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        info[package] = None
try:
    import univigu_hf

    info["univigu_hf"] = univigu_hf.__file__
except Exception as error:  # noqa: BLE001
    info["univigu_hf_error"] = f"{type(error).__name__}: {error}"
print(json.dumps(info, indent=2))
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    json.dump(info, handle, indent=2)
sys.exit(0 if torch.cuda.is_available() else 3)
EOF
}

export DEST PYTHON
export -f card
run_part card "${TIMEOUT_CARD:-30}" bash -c card
run_part real_size "${TIMEOUT_REAL_SIZE:-180}" \
    "$PYTHON" benchmarks/real_size.py --device cuda --sections run_480p --steps 4 --threads 16 \
    --workdir "${TMPDIR:-/tmp}/univigu_real_size_gpu" --output "$DEST/gpu_check_real_size.json"
run_part group_offload "${TIMEOUT_GROUP_OFFLOAD:-80}" \
    "$PYTHON" benchmarks/group_offload.py --device cuda --output "$DEST/gpu_check_group_offload.json"
run_part toolbox "${TIMEOUT_TOOLBOX:-90}" \
    "$PYTHON" benchmarks/toolbox.py --device cuda --output "$DEST/gpu_check_toolbox.json"
run_part cache_hooks "${TIMEOUT_CACHE_HOOKS:-50}" \
    "$PYTHON" benchmarks/cache_hooks.py --device cuda --quick --output "$DEST/gpu_check_cache_hooks.json"

joined=$(IFS=,; echo "${PARTS[*]}")
cat >"$DEST/gpu_check_summary.json" <<EOF
{
  "script": "benchmarks/gpu_check.sh",
  "date_utc": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "python": "$PYTHON",
  "total_seconds": $((SECONDS - START_ALL)),
  "parts": [$joined]
}
EOF
cat "$DEST/gpu_check_summary.json"
