// Times the implicit-GEMM kernels of hip-kernels/implicit.hip on their own, for one set of
// shape knobs per build (HC_IG_TN32, HC_IG_BK32, HC_IG_MIN_BLOCKS, HC_IW_MIN_BLOCKS), on the
// layers they serve: implicit_fwd, and implicit_wgrad[_k128|_few] at several slice counts
// (one wave of an H100 is 264 blocks: the plan's `implicit_target_blocks` there). Each result
// is checked against a plain direct convolution accumulating in double. With -DHC_TRY_SHAPES
// it also times candidate weight-gradient tilings (HC_TRY below: other tiles, block sizes).
// NVIDIA machine, from the repository root (scripts/implicit_tune.sh builds the knob sets):
//   nvcc -O3 -arch=sm_90 -std=c++17 -o tiles scripts/implicit_tiles.cu && ./tiles [layer] [reps]
#include "../hip-kernels/implicit.hip"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef HC_TRY_SHAPES
// Candidate weight-gradient tilings, timed beside the library's (not in the library).
#define HC_TRY(name, BM, BN, TM, TN, BK, THREADS, MIN_BLOCKS)                                 \
    extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) try_##name(              \
        KernelGeom g, KernelStrides xs, KernelStrides ys, const float* x, const float* dy,     \
        float* part, hc_i64 slices) {                                                          \
        implicit_wgrad_impl<hc_f32, hc_block_tile<BM, BN, TM, TN, BK, THREADS>>(g, xs, ys, x, \
                                                                                 dy, part,     \
                                                                                 slices);      \
    }
HC_TRY(t88_b1, 128, 128, 8, 8, 8, 256, 1)
HC_TRY(t88_b2, 128, 128, 8, 8, 8, 256, 2)
HC_TRY(t88_bk16_b1, 128, 128, 8, 8, 16, 256, 1)
HC_TRY(t128_88_b2, 128, 64, 8, 8, 8, 128, 2)
HC_TRY(t128_88_b3, 128, 64, 8, 8, 8, 128, 3)
#endif

// x[n, c] at the input position that output (oh, ow) reads through filter tap (r, s), as a
// double; false in the padding.
__device__ bool reference_x(const KernelGeom& g, const float* x, hc_i64 n, hc_i64 c, hc_i64 oh,
                            hc_i64 ow, hc_i64 r, hc_i64 s, double& value) {
    const hc_i64 ih = oh * g.stride[1] - g.pad[1] + r * g.dilation[1];
    const hc_i64 iw = ow * g.stride[2] - g.pad[2] + s * g.dilation[2];
    if (ih < 0 || ih >= g.input[1] || iw < 0 || iw >= g.input[2]) return false;
    value = x[((n * g.c + c) * g.input[1] + ih) * g.input[2] + iw];
    return true;
}

// One thread per output: the sum over every input channel and filter tap.
__global__ void reference_fwd(KernelGeom g, const float* x, const float* w, float* y) {
    const hc_i64 total = g.n * g.k * g.output_len;
    for (hc_i64 i = hc_thread_id(); i < total; i += hc_thread_count()) {
        const hc_i64 ow = i % g.output[2], oh = (i / g.output[2]) % g.output[1];
        const hc_i64 k = (i / g.output_len) % g.k, n = i / (g.output_len * g.k);
        double acc = 0.0, v = 0.0;
        for (hc_i64 c = 0; c < g.c; ++c)
            for (hc_i64 r = 0; r < g.kernel[1]; ++r)
                for (hc_i64 s = 0; s < g.kernel[2]; ++s)
                    if (reference_x(g, x, n, c, oh, ow, r, s, v))
                        acc += v * w[((k * g.c + c) * g.kernel[1] + r) * g.kernel[2] + s];
        y[i] = (float)acc;
    }
}

// One thread per weight: the sum over every image and output position.
__global__ void reference_wgrad(KernelGeom g, const float* x, const float* dy, float* dw) {
    const hc_i64 total = g.k * g.c * g.kernel_len;
    for (hc_i64 i = hc_thread_id(); i < total; i += hc_thread_count()) {
        const hc_i64 s = i % g.kernel[2], r = (i / g.kernel[2]) % g.kernel[1];
        const hc_i64 c = (i / g.kernel_len) % g.c, k = i / (g.kernel_len * g.c);
        double acc = 0.0, v = 0.0;
        for (hc_i64 n = 0; n < g.n; ++n)
            for (hc_i64 oh = 0; oh < g.output[1]; ++oh)
                for (hc_i64 ow = 0; ow < g.output[2]; ++ow)
                    if (reference_x(g, x, n, c, oh, ow, r, s, v))
                        acc += v * dy[((n * g.k + k) * g.output[1] + oh) * g.output[2] + ow];
        dw[i] = (float)acc;
    }
}

// Sums the slices' partial weight gradients in slice order.
__global__ void sum_slices(const float* part, hc_i64 slices, hc_i64 len, float* out) {
    for (hc_i64 i = hc_thread_id(); i < len; i += hc_thread_count()) {
        float acc = 0.f;
        for (hc_i64 s = 0; s < slices; ++s) acc += part[s * len + i];
        out[i] = acc;
    }
}

struct Layer {
    const char* name;
    int n, c, hw, k, ks, stride, pad, dilation;
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

// Timed repetitions: the first 5 are discarded when there are more than 5 (1 under a profiler).
static int g_reps = 25;

template <class F>
static double median_ms(F launch) {
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    std::vector<float> times;
    for (int rep = 0; rep < g_reps; ++rep) {
        cudaEventRecord(a);
        launch();
        cudaEventRecord(b);
        cudaEventSynchronize(b);
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        if (rep >= 5 || g_reps <= 5) times.push_back(ms);
    }
    std::sort(times.begin(), times.end());
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return times[times.size() / 2];
}

// The largest difference relative to the largest reference value.
static double worst_rel(const std::vector<float>& got, const std::vector<float>& want) {
    double scale = 0, worst = 0;
    for (float v : want) scale = std::max(scale, (double)std::fabs(v));
    for (size_t i = 0; i < got.size(); ++i)
        worst = std::max(worst, std::fabs((double)got[i] - want[i]) / std::max(scale, 1e-30));
    return worst;
}

static std::vector<float> fetch(const float* d, size_t n) {
    std::vector<float> h(n);
    cudaMemcpy(h.data(), d, n * 4, cudaMemcpyDeviceToHost);
    return h;
}

// Arguments: [layer name] [reps]: only that layer, timed that often (1 to profile).
int main(int argc, char** argv) {
    const char* only = argc > 1 ? argv[1] : nullptr;
    if (argc > 2) g_reps = std::max(1, atoi(argv[2]));
    const Layer layers[] = {{"r50_conv1", 32, 3, 224, 64, 7, 2, 3, 1},
                            {"r50_l2_s2", 32, 128, 56, 128, 3, 2, 1, 1},
                            {"r50_l2_3x3", 32, 128, 28, 128, 3, 1, 1, 1},
                            {"r50_l3_3x3", 32, 256, 14, 256, 3, 1, 1, 1},
                            {"r50_l4_3x3", 32, 512, 7, 512, 3, 1, 1, 1},
                            {"r50_l1_3x3", 32, 64, 56, 64, 3, 1, 1, 1},
                            {"dilated", 8, 256, 64, 256, 3, 1, 2, 2},
                            {"odd_k200", 3, 96, 17, 200, 3, 2, 1, 1},
                            {"r50_l3_1x1", 32, 1024, 14, 256, 1, 1, 0, 1},
                            {"r50_l1_exp", 32, 64, 56, 256, 1, 1, 0, 1},
                            {"r50_l1_1x1", 32, 64, 56, 64, 1, 1, 0, 1}};
    int failures = 0;
    for (const Layer& l : layers) {
        if (only && strcmp(only, l.name) != 0) continue;
        const int oh = (l.hw + 2 * l.pad - l.dilation * (l.ks - 1) - 1) / l.stride + 1;
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
            g.dilation[a] = a ? l.dilation : 1;
        }
        g.input_len = (hc_i64)l.hw * l.hw;
        g.kernel_len = (hc_i64)l.ks * l.ks;
        g.output_len = (hc_i64)oh * oh;
        const size_t nx = (size_t)l.n * l.c * l.hw * l.hw, nw = (size_t)l.k * l.c * l.ks * l.ks;
        const size_t ny = (size_t)l.n * l.k * oh * oh;
        std::vector<float> hx(nx), hw(nw), hy(ny);
        unsigned state = 12345u;
        auto next = [&]() {
            state = state * 1664525u + 1013904223u;
            return (float)((state >> 8) & 0xffff) / 32768.f - 1.f;
        };
        for (auto& v : hx) v = next();
        for (auto& v : hw) v = next();
        for (auto& v : hy) v = next();
        // Most partial sums: enough to fill the GPU with one 160-tap tile per 64 channels.
        const hc_i64 max_slices = (hc_i64)l.c * l.ks * l.ks <= 160 ? 1600 : 256;
        float *x, *w, *y, *dy, *ref, *part, *dw;
        cudaMalloc(&x, nx * 4);
        cudaMalloc(&w, nw * 4);
        cudaMalloc(&y, ny * 4);
        cudaMalloc(&dy, ny * 4);
        cudaMalloc(&ref, std::max(ny, nw) * 4);
        cudaMalloc(&part, max_slices * nw * 4);
        cudaMalloc(&dw, nw * 4);
        cudaMemcpy(x, hx.data(), nx * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(w, hw.data(), nw * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(dy, hy.data(), ny * 4, cudaMemcpyHostToDevice);
        const KernelStrides xs = nchw(l.c, l.hw, l.hw), ws = nchw(l.c, l.ks, l.ks),
                            ys = nchw(l.k, oh, oh);
        const hc_i64 positions = g.n * g.output_len;
        const double flops = 2.0 * ny * l.c * l.ks * l.ks;
        const bool fwd_fits = l.c * l.ks * l.ks <= HC_IG_MAX_TAPS;

        // Forward.
        if (fwd_fits) {
            reference_fwd<<<4096, 256>>>(g, x, w, ref);
            const std::vector<float> want = fetch(ref, ny);
            const int BN = hc_ig_shape<float>::BN;
            const dim3 grid((unsigned)((positions + BN - 1) / BN), (unsigned)((g.k + 63) / 64));
            cudaMemset(y, 0xff, ny * 4);
            const double t = median_ms([&] {
                implicit_fwd_f32<<<grid, HC_IG_THREADS>>>(g, xs, ws, ys, x, w, y, 1.f, 0.f);
            });
            const double err = worst_rel(fetch(y, ny), want);
            failures += err > 1e-5;
            printf("%-10s fwd   %.3f ms (%.1f TF/s)  err %.1e  %s\n", l.name, t, flops / t / 1e9,
                   err, cudaGetErrorString(cudaGetLastError()));
        }

        // Weight gradient, with the partial sums added in slice order.
        reference_wgrad<<<1024, 256>>>(g, x, dy, ref);
        const std::vector<float> want = fetch(ref, nw);
        const hc_i64 taps = (hc_i64)l.c * l.ks * l.ks;
        // One weight-gradient kernel on its (channels x taps) tiles, at several slice counts.
        typedef void (*WgradKernel)(KernelGeom, KernelStrides, KernelStrides, const float*,
                                    const float*, float*, hc_i64);
        auto time_wgrad = [&](WgradKernel kernel, const char* label, hc_i64 tile_k,
                              hc_i64 tile_taps, int threads = HC_IG_THREADS) {
            const hc_i64 tiles =
                ((g.k + tile_k - 1) / tile_k) * ((taps + tile_taps - 1) / tile_taps);
            // Slice counts (at most the partial buffer's and one per 256 positions): one H100
            // wave (132 SMs x 2 blocks) is 14 slices of r50_l2_s2's 18 tiles, 264 of conv1's
            // one tile.
            for (hc_i64 wanted : {14, 15, 29, 44, 132, 264, 528, 792}) {
                const hc_i64 slices =
                    std::max<hc_i64>(1, std::min<hc_i64>({wanted, positions / 256, max_slices}));
                const dim3 grid((unsigned)slices, (unsigned)tiles);
                const double t = median_ms(
                    [&] { kernel<<<grid, threads>>>(g, xs, ys, x, dy, part, slices); });
                const double t_sum = median_ms([&] {
                    sum_slices<<<(unsigned)((nw + 255) / 256), 256>>>(part, slices, nw, dw);
                });
                const double err = worst_rel(fetch(dw, nw), want);
                failures += err > 1e-5;
                printf("%-10s %-12s %.3f + sum %.3f ms (%.1f TF/s)  %lld slices (%lld blocks)  "
                       "err %.1e  %s\n",
                       l.name, label, t, t_sum, flops / t / 1e9, slices, slices * tiles, err,
                       cudaGetErrorString(cudaGetLastError()));
            }
        };
        typedef hc_iw_shape<float> W;
        time_wgrad(implicit_wgrad_f32, "wgrad", W::tile::BM, W::tile::BN);
        time_wgrad(implicit_wgrad_k128_f32, "wgrad_k128", W::k128::BM, W::k128::BN);
#ifdef HC_TRY_SHAPES
        if (taps > 128) {
            time_wgrad(try_t88_b1, "try_t88_b1", 128, 128, 256);
            time_wgrad(try_t88_b2, "try_t88_b2", 128, 128, 256);
            time_wgrad(try_t88_bk16_b1, "try_t88_bk16_b1", 128, 128, 256);
            time_wgrad(try_t128_88_b2, "try_t128_88_b2", 128, 64, 128);
            time_wgrad(try_t128_88_b3, "try_t128_88_b3", 128, 64, 128);
        }
#endif
        // Filters of 129-160 taps: implicit_wgrad_few, one 160-tap tile per 64 channels.
        if (taps > W::tile::BN && taps <= W::few_taps::BN)
            time_wgrad(implicit_wgrad_few_f32, "wgrad_few", W::few_taps::BM, W::few_taps::BN);
        cudaFree(x);
        cudaFree(w);
        cudaFree(y);
        cudaFree(dy);
        cudaFree(ref);
        cudaFree(part);
        cudaFree(dw);
    }
    printf("%s (%d failures)\n", failures ? "FAIL" : "PASS", failures);
    return failures != 0;
}
