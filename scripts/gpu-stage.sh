#!/usr/bin/env bash
# Builds everything the GPU machine needs on this (CPU) machine and stages it in the
# git-ignored folder .gpu-stage/: the CLI, the cdylib, the GPU test binaries, the Python
# harnesses and the device-side runner. The GPU machine has no Rust toolchain; binaries built
# here (glibc 2.36) run there (glibc 2.39).
#   scripts/gpu-stage.sh            # then, on the GPU machine: bash .gpu-stage/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
stage=.gpu-stage
rm -rf "$stage" && mkdir -p "$stage"
cargo build --release --bins --lib
cp target/release/hipconv target/release/libhipconv.so "$stage/"
# Test executables have hashed names: ask cargo where they are.
cargo test --release --no-run --message-format=json --test gpu --test c_abi 2>/dev/null \
  | python3 -c '
import json, sys, shutil
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], sys.argv[1] + "/test-" + m["target"]["name"])
' "$stage" || true
# Symbols off too: the stage has to fit the GPU machine's 64 MiB carry with the tracked tree.
strip --strip-all "$stage"/hipconv "$stage"/test-* 2>/dev/null || true
strip --strip-unneeded "$stage"/libhipconv.so 2>/dev/null || true
cp scripts/gpu-run.sh "$stage/run.sh"
cp python/*.py "$stage/" 2>/dev/null || true
cp scripts/bench_gpu.py scripts/kernel_times.py "$stage/" 2>/dev/null || true
ls -la "$stage"
