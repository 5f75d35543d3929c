// Times the implicit-GEMM forward kernel (hip-kernels/implicit.hip) on its own, for one set of
// shape knobs per build, on the layers it serves, and checks it against a plain direct
// convolution. Built and run on an NVIDIA machine with nvcc (scripts/implicit_tune.sh):
//   nvcc -O3 -arch=sm_90 -DHC_IG_TN32=8 -o tune scripts/implicit_tune.cu && ./tune
#include "../hip-kernels/implicit.hip"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

// The plain reference: one thread per output, taps in order.
__global__ void reference_fwd(KernelGeom g, const float* x, const float* w, float* y) {
    const hc_i64 total = g.n * g.k * g.output_len;
    for (hc_i64 i = hc_thread_id(); i < total; i += hc_thread_count()) {
        const hc_i64 ow = i % g.output[2], oh = (i / g.output[2]) % g.output[1];
        const hc_i64 k = (i / g.output_len) % g.k, n = i / (g.output_len * g.k);
        float acc = 0.f;
        for (hc_i64 c = 0; c < g.c; ++c)
            for (hc_i64 r = 0; r < g.kernel[1]; ++r)
                for (hc_i64 s = 0; s < g.kernel[2]; ++s) {
                    const hc_i64 ih = oh * g.stride[1] - g.pad[1] + r * g.dilation[1];
                    const hc_i64 iw = ow * g.stride[2] - g.pad[2] + s * g.dilation[2];
                    if (ih < 0 || ih >= g.input[1] || iw < 0 || iw >= g.input[2]) continue;
                    acc += x[((n * g.c + c) * g.input[1] + ih) * g.input[2] + iw] *
                           w[((k * g.c + c) * g.kernel[1] + r) * g.kernel[2] + s];
                }
        y[i] = acc;
    }
}

struct Layer {
    const char* name;
    int n, c, hw, k, ks, stride, pad;
};

static KernelStrides nchw(hc_i64 c, hc_i64 h, hc_i64 w) {
    KernelStrides s;
    s.n = c * h * w;
    s.c = h * w;
    s.spatial[0] = 0;
    s.spatial[1] = w;
    s.spatial[2] = 1;
    return s;
}

int main() {
    const Layer layers[] = {{"r50_conv1", 32, 3, 224, 64, 7, 2, 3},
                            {"r50_l2_s2", 32, 128, 56, 128, 3, 2, 1},
                            {"r50_l1_3x3", 32, 64, 56, 64, 3, 1, 1},
                            {"r50_l1_1x1", 32, 64, 56, 64, 1, 1, 0},
                            {"r50_l1_exp", 32, 64, 56, 256, 1, 1, 0},
                            {"r50_l3_1x1", 32, 1024, 14, 256, 1, 1, 0}};
    const int BN = hc_ig_shape<float>::BN;
    for (const Layer& l : layers) {
        const int oh = (l.hw + 2 * l.pad - l.ks) / l.stride + 1;
        KernelGeom g = {};
        g.n = l.n;
        g.c = l.c;
        g.k = l.k;
        g.groups = 1;
        g.c_per_group = l.c;
        g.k_per_group = l.k;
        const hc_i64 in[3] = {1, l.hw, l.hw}, ker[3] = {1, l.ks, l.ks}, out[3] = {1, oh, oh};
        for (int a = 0; a < 3; ++a) {
            g.input[a] = in[a];
            g.kernel[a] = ker[a];
            g.output[a] = out[a];
            g.pad[a] = a ? l.pad : 0;
            g.stride[a] = a ? l.stride : 1;
            g.dilation[a] = 1;
        }
        g.input_len = (hc_i64)l.hw * l.hw;
        g.kernel_len = (hc_i64)l.ks * l.ks;
        g.output_len = (hc_i64)oh * oh;
        const size_t nx = (size_t)l.n * l.c * l.hw * l.hw, nw = (size_t)l.k * l.c * l.ks * l.ks;
        const size_t ny = (size_t)l.n * l.k * oh * oh;
        std::vector<float> hx(nx), hw(nw);
        unsigned state = 12345u;
        auto next = [&]() {
            state = state * 1664525u + 1013904223u;
            return (float)((state >> 8) & 0xffff) / 32768.f - 1.f;
        };
        for (auto& v : hx) v = next();
        for (auto& v : hw) v = next();
        float *x, *w, *y, *ref;
        cudaMalloc(&x, nx * 4);
        cudaMalloc(&w, nw * 4);
        cudaMalloc(&y, ny * 4);
        cudaMalloc(&ref, ny * 4);
        cudaMemcpy(x, hx.data(), nx * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(w, hw.data(), nw * 4, cudaMemcpyHostToDevice);
        reference_fwd<<<4096, 256>>>(g, x, w, ref);
        const KernelStrides xs = nchw(l.c, l.hw, l.hw), ws = nchw(l.c, l.ks, l.ks),
                            ys = nchw(l.k, oh, oh);
        const dim3 grid((unsigned)((g.n * g.output_len + BN - 1) / BN), (unsigned)((g.k + 63) / 64));
        std::vector<float> times;
        cudaEvent_t a, b;
        cudaEventCreate(&a);
        cudaEventCreate(&b);
        for (int rep = 0; rep < 23; ++rep) {
            cudaEventRecord(a);
            implicit_fwd_f32<<<grid, HC_IG_THREADS>>>(g, xs, ws, ys, x, w, y, 1.f, 0.f);
            cudaEventRecord(b);
            cudaEventSynchronize(b);
            float ms = 0;
            cudaEventElapsedTime(&ms, a, b);
            if (rep >= 3) times.push_back(ms);
        }
        std::sort(times.begin(), times.end());
        std::vector<float> hy(ny), hr(ny);
        cudaMemcpy(hy.data(), y, ny * 4, cudaMemcpyDeviceToHost);
        cudaMemcpy(hr.data(), ref, ny * 4, cudaMemcpyDeviceToHost);
        double worst = 0;
        for (size_t i = 0; i < ny; ++i)
            worst = std::max(worst, (double)std::fabs(hy[i] - hr[i]) / (1.0 + std::fabs(hr[i])));
        const double ms = times[times.size() / 2];
        const double flops = 2.0 * ny * l.c * l.ks * l.ks;
        printf("TN32=%d BK32=%d MIN_BLOCKS=%d %-10s %.3f ms  %.1f TFLOP/s  max rel diff %.1e  %s\n",
               HC_IG_TN32, HC_IG_BK32, HC_IG_MIN_BLOCKS, l.name, ms, flops / ms / 1e9, worst,
               cudaGetErrorString(cudaGetLastError()));
        cudaFree(x);
        cudaFree(w);
        cudaFree(y);
        cudaFree(ref);
    }
    return 0;
}
