#!/usr/bin/env bash
# Builds scripts/implicit_tiles.cu once per set of implicit-GEMM shape knobs with nvcc and runs
# each build (NVIDIA machine; run from the repository root). Prints register and spill counts.
#   scripts/implicit_tune.sh [layer]
set -u
out=${OUT:-/tmp}
layer=("$@")
for knobs in "4 8 3 2" "4 16 3 2" "4 8 3 3"; do
  set -- $knobs
  bin=$out/tiles-$1-$2-$3-$4
  nvcc -O3 -arch=sm_90 -std=c++17 -DHC_IG_TN32=$1 -DHC_IG_BK32=$2 -DHC_IG_MIN_BLOCKS=$3 \
    -DHC_IW_MIN_BLOCKS=$4 -Xptxas -v -o "$bin" scripts/implicit_tiles.cu 2>&1 \
    | grep -A3 -E "entry function 'implicit_(fwd|wgrad|wgrad_few|wgrad_k128)_f32'" \
    | grep -oE "implicit_[a-z_]*_f32|Used [0-9]+ registers|[0-9]+ bytes spill stores" | paste -sd' '
  echo "TN32=$1 BK32=$2 MIN_BLOCKS=$3 IW_MIN_BLOCKS=$4"
  "$bin" ${layer[@]+"${layer[@]}"}
  rm -f "$bin"
done
