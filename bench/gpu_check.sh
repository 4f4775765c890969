#!/usr/bin/env bash
# Every GPU check in one command (< 8 min on one H100/H200), all output in one folder:
#   1. the `gpu`-marked tests (junit XML + log),
#   2. bench.speed on CUDA: our eager fp32 step at the reference settings vs the fast path
#      (whole-step CUDA graph + bf16 + channels_last + fused SGD), card name, img/s, ratio,
#      and a same-seed accuracy check on both paths,
#   3. bench.reproduce --profile fast for one seed.
#
#   bash bench/gpu_check.sh             # on the GPU machine, from the repository root
#   bash bench/gpu_check.sh --dry-run   # here, on a CPU: the same steps, minus the CUDA work
#
# CIFAR-10 must be in var/data/cifar10/ (git-ignored; carry it to the device machine):
#   mkdir -p var/data/cifar10 && cp /work/shared/data/cifar10/*.tar.gz var/data/cifar10/
# Output: $OUT if set, else var/gpu_check/<UTC timestamp>. Each step's exit status is in
# status.txt; the script exits non-zero when any step failed, after running them all.
set -uo pipefail

DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-var/gpu_check/$(date -u +%Y%m%d-%H%M%S)}"
DATA="var/data/cifar10"
mkdir -p "$OUT"
STATUS="$OUT/status.txt"
: >"$STATUS"

for archive in train.tar.gz test.tar.gz; do
  if [[ ! -f "$DATA/$archive" ]]; then
    echo "gpu_check: CIFAR-10 archive $DATA/$archive is missing." >&2
    echo "  copy it first: mkdir -p $DATA && cp /work/shared/data/cifar10/*.tar.gz $DATA/" >&2
    echo "  (and carry $DATA to the device machine)" >&2
    echo "data: missing $DATA/$archive" >>"$STATUS"
    exit 2
  fi
done

if [[ $DRY_RUN == 0 ]] && ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check: no CUDA device visible to torch; use --dry-run on a CPU machine" >&2
  echo "cuda: unavailable" >>"$STATUS"
  exit 3
fi

FAILED=0
# run NAME SECONDS CMD...: one step, bounded, output to $OUT/NAME.log, status recorded.
run() {
  local name="$1" seconds="$2"
  shift 2
  echo "== $name (limit ${seconds}s): $*" | tee -a "$OUT/commands.txt"
  local started=$SECONDS
  timeout --kill-after=10 "$seconds" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc seconds=$((SECONDS - started))" | tee -a "$STATUS"
  tail -n 25 "$OUT/$name.log"
  [[ $rc == 0 ]] || FAILED=1
}

"$PYTHON" - >"$OUT/machine.json" <<'EOF'
import json
from bench.common import machine
print(json.dumps(machine(), indent=2))
EOF
command -v nvidia-smi >/dev/null && nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1

if [[ $DRY_RUN == 1 ]]; then
  # No CUDA here: the gpu tests are collected (they import and are deselected), bench.speed
  # runs its CPU eager path on small networks, and reproduce only parses its arguments
  # and finds the data.
  # Collection imports every gpu test module; all are then deselected, which pytest
  # reports as exit 5 ("no tests ran"): that is the expected outcome here.
  run gpu_tests 120 bash -c '"$0" -m pytest -m gpu --collect-only -q -p no:cacheprovider \
    tests/repair_core; rc=$?; [[ $rc == 5 ]] && exit 0; exit $rc' "$PYTHON"
  run speed 300 "$PYTHON" -m bench.speed --device cpu --only retrain --modes eager --reduced \
    --steps 1 --warmup 0 --json "$OUT/speed.json"
  run reproduce 180 "$PYTHON" -c "from bench.common import default_cifar10_dir as d; \
import bench.reproduce as r; print('data:', d()); r.main(['--help'])"
else
  run gpu_tests 150 "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider \
    --junitxml "$OUT/gpu_tests.xml" tests/repair_core
  run speed 120 "$PYTHON" -m bench.speed --device cuda --only search retrain eval \
    --steps 20 --warmup 5 --accuracy 3 --json "$OUT/speed.json"
  run reproduce 200 "$PYTHON" -m bench.reproduce --profile fast --seeds 0 --device cuda \
    --data "$DATA" --out "$OUT/reproduce"
fi
echo "gpu_check: results in $OUT (status: $STATUS)"
exit $FAILED
