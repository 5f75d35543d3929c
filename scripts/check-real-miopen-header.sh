#!/usr/bin/env bash
# Compiles the C client (tests/c/conv_client.c) against MIOpen's own public header instead of
# hipconv's, links it to libhipconv.so and runs it on the CPU backend: proof that a program
# written only against MIOpen's documented API gets correct results from hipconv.
#   scripts/check-real-miopen-header.sh /path/to/MIOpen/include/miopen/miopen.h
# The header is not part of this repository; the build-generated companions it includes
# (miopen/config.h, miopen/export.h) and hip_runtime_api.h are replaced by minimal stand-ins.
set -euo pipefail
header=${1:?usage: $0 path/to/miopen.h}
cd "$(dirname "$0")/.."
cargo build --release --lib >/dev/null
dir=$(mktemp -d)
mkdir -p "$dir/miopen" "$dir/hip" "$dir/hipconv"
cp "$header" "$dir/miopen/miopen.h"
printf '#define MIOPEN_BACKEND_HIP 1\n#define MIOPEN_BACKEND_OPENCL 0\n' >"$dir/miopen/config.h"
printf '#define MIOPEN_EXPORT __attribute__((visibility("default")))\n#define MIOPEN_DEPRECATED __attribute__((deprecated))\n' >"$dir/miopen/export.h"
printf 'typedef struct ihipStream_t* hipStream_t;\n' >"$dir/hip/hip_runtime_api.h"
# The client includes <hipconv/miopen.h>: point that at MIOpen's header. uint64_t and a C
# typedef of a struct MIOpen declares C++-style are the only additions.
printf '#include <stdint.h>\ntypedef struct miopenTensorArgument_t miopenTensorArgument_t;\n#include <miopen/miopen.h>\n' >"$dir/hipconv/miopen.h"
cc -std=c11 -O1 -I"$dir" tests/c/conv_client.c -o "$dir/client" \
  -L target/release -lhipconv -Wl,-rpath,"$PWD/target/release" -lm
HIPCONV_BACKEND=cpu "$dir/client"
