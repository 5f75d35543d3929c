#!/usr/bin/env bash
# Runs on the GPU machine from the repository root (see scripts/gpu-stage.sh). Writes logs to
# $OUT (or ./gpu-out). Each step runs even when an earlier one fails; the exit code is the
# number of failed steps.
set -u
stage=.gpu-stage
out=${OUT:-gpu-out}
mkdir -p "$out"
failed=0
step() {
  local name=$1; shift
  echo "=== $name: $*" | tee -a "$out/summary.txt"
  local t0=$(date +%s%N)
  "$@" >"$out/$name.log" 2>&1
  local rc=$?
  local t1=$(date +%s%N)
  printf '=== %s: rc=%d (%d ms)\n' "$name" "$rc" "$(( (t1 - t0) / 1000000 ))" | tee -a "$out/summary.txt"
  tail -n 25 "$out/$name.log"
  [ $rc -eq 0 ] || failed=$((failed + 1))
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
step doctor "$stage/hipconv" doctor
step verify "$stage/hipconv" verify --backend cuda
step verify_1mib "$stage/hipconv" verify --backend cuda --workspace 1048576
for t in "$stage"/test-*; do
  [ -x "$t" ] && step "$(basename "$t")" "$t" --test-threads 1
done
[ -f "$stage/bench_gpu.py" ] && step bench_gpu python3 "$stage/bench_gpu.py" --lib "$stage/libhipconv.so" --markdown-out "$out/bench_gpu.md"
echo "failed steps: $failed" | tee -a "$out/summary.txt"
exit $failed
