#!/usr/bin/env bash
# Builds scripts/implicit_tune.cu once per set of shape knobs with nvcc and runs each build
# (NVIDIA machine; run from the repository root). Prints register and shared-memory use too.
set -u
out=${OUT:-/tmp}
for knobs in "4 8 3" "4 16 3"; do
  set -- $knobs
  bin=$out/tune-$1-$2-$3
  nvcc -O3 -arch=sm_90 -std=c++17 -DHC_IG_TN32=$1 -DHC_IG_BK32=$2 -DHC_IG_MIN_BLOCKS=$3 \
    -Xptxas -v -o "$bin" scripts/implicit_tune.cu 2>&1 \
    | grep -A3 "entry function 'implicit_fwd_f32'" | grep -o "Used [0-9]* registers.*"
  "$bin"
  rm -f "$bin"
done
