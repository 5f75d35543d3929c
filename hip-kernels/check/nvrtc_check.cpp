// Compiles hip-kernels/ with NVRTC exactly as a run-time CUDA backend would (all.hip as the
// program, the other files as named headers, no include path), loads the PTX and looks up
// every kernel.
//
//   g++ -std=c++17 -I$CUDA/include hip-kernels/check/nvrtc_check.cpp -L$CUDA/lib64 -lnvrtc -lcuda
//   ./a.out hip-kernels

#include <cuda.h>
#include <nvrtc.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

static std::string read(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

int main(int argc, char** argv) {
    const std::string dir = argc > 1 ? argv[1] : "hip-kernels";
    const char* header_names[] = {"common.h", "im2col.hip", "col2im.hip",
                                  "pixels.hip", "bias.hip", "direct.hip"};
    std::vector<std::string> texts;
    std::vector<const char*> headers;
    for (const char* h : header_names) texts.push_back(read(dir + "/" + h));
    for (const std::string& t : texts) headers.push_back(t.c_str());
    const std::string main_src = read(dir + "/all.hip");

    nvrtcProgram prog;
    if (nvrtcCreateProgram(&prog, main_src.c_str(), "all.hip", (int)headers.size(),
                           headers.data(), header_names) != NVRTC_SUCCESS)
        return 2;
    const char* opts[] = {"--gpu-architecture=compute_80", "-std=c++17"};
    const nvrtcResult r = nvrtcCompileProgram(prog, 2, opts);
    size_t log_len = 0;
    nvrtcGetProgramLogSize(prog, &log_len);
    std::string log(log_len, '\0');
    nvrtcGetProgramLog(prog, &log[0]);
    if (log_len > 1) std::printf("NVRTC log:\n%s\n", log.c_str());
    if (r != NVRTC_SUCCESS) {
        std::printf("NVRTC failed: %s\n", nvrtcGetErrorString(r));
        return 1;
    }
    size_t ptx_len = 0;
    nvrtcGetPTXSize(prog, &ptx_len);
    std::string ptx(ptx_len, '\0');
    nvrtcGetPTX(prog, &ptx[0]);

    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    if (cuInit(0) || cuDeviceGet(&dev, 0) || cuDevicePrimaryCtxRetain(&ctx, dev) ||
        cuCtxSetCurrent(ctx) || cuModuleLoadData(&mod, ptx.c_str())) {
        std::printf("could not load the PTX\n");
        return 1;
    }
    const char* ops[] = {"pack", "unpack", "im2col", "gather_pixels", "store_pixels",
                         "col2im", "bias_add", "bias_grad", "direct_fwd"};
    const char* types[] = {"f16", "bf16", "f32", "f64"};
    int found = 0;
    for (const char* op : ops)
        for (const char* t : types) {
            CUfunction f;
            const std::string name = std::string(op) + "_" + t;
            if (cuModuleGetFunction(&f, mod, name.c_str()) == CUDA_SUCCESS)
                ++found;
            else
                std::printf("missing %s\n", name.c_str());
        }
    std::printf("NVRTC: %zu bytes of PTX, %d of 36 kernels loaded\n", ptx_len, found);
    return found == 36 ? 0 : 1;
}
