// Times the unrolled 3x3 depthwise kernels of hip-kernels/direct.hip on mbv2_dw (N 32, 96
// channels, 112 x 112, pad 1, f32): the library's entry points (direct_fwd3 and direct_wgrad3:
// strips of 8 rows at unit stride and dilation; direct_bwd_data3) against one row per thread
// (the forward's R = 1, the weight gradient's direct_wgrad_fixed), and compares their results
// (the forward must be bit-identical; the weight gradient's sums are regrouped). NVIDIA machine, from the repository root:
//   nvcc -O3 -arch=sm_90 -std=c++17 -o dw scripts/depthwise_strips.cu && ./dw
#include "../hip-kernels/direct.hip"
#include <cuda_runtime.h>
#include <cstdio>
#include <vector>
#include <algorithm>
__global__ void old_wgrad(KernelGeom g, KernelStrides xs, KernelStrides ys, const float* x, const float* dy, float* part, hc_i64 slices) {
    direct_wgrad_fixed<hc_f32, 3, 3>(g, xs, ys, x, dy, part, slices);
}
__global__ void old_fwd(KernelGeom g, KernelStrides xs, KernelStrides ws, KernelStrides ys, const float* x, const float* w, float* y) {
    direct_fwd_strip<hc_f32, 3, 3, 1>(g, xs, ws, ys, x, w, y, 1.f, 0.f);
}
static KernelStrides nchw(long c, long h, long w) { KernelStrides s = {}; s.n = c*h*w; s.c = h*w; s.spatial[0] = h*w; s.spatial[1] = w; s.spatial[2] = 1; return s; }
template <class F> double med(F f) { cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b); std::vector<float> t;
  for (int i = 0; i < 25; ++i) { cudaEventRecord(a); f(); cudaEventRecord(b); cudaEventSynchronize(b); float ms; cudaEventElapsedTime(&ms, a, b); if (i >= 5) t.push_back(ms); }
  std::sort(t.begin(), t.end()); return t[t.size()/2]; }
int main() {
  const long N = 32, C = 96, H = 112;
  KernelGeom g = {}; g.n = N; g.c = C; g.k = C; g.groups = C; g.c_per_group = 1; g.k_per_group = 1;
  for (int a = 0; a < 3; ++a) { g.input[a] = a ? H : 1; g.kernel[a] = a ? 3 : 1; g.output[a] = a ? H : 1; g.pad[a] = a ? 1 : 0; g.stride[a] = 1; g.dilation[a] = 1; }
  g.input_len = H*H; g.kernel_len = 9; g.output_len = H*H;
  size_t n = N*C*H*H; float *x, *y, *w, *y2; cudaMalloc(&x, n*4); cudaMalloc(&y, n*4); cudaMalloc(&y2, n*4); cudaMalloc(&w, C*9*4);
  std::vector<float> h(n); for (size_t i = 0; i < n; ++i) h[i] = (float)((i * 2654435761u) % 1000) / 500.f - 1.f;
  cudaMemcpy(x, h.data(), n*4, cudaMemcpyHostToDevice); cudaMemcpy(w, h.data(), C*9*4, cudaMemcpyHostToDevice);
  KernelStrides s = nchw(C, H, H), ws = nchw(1, 3, 3);
  const int pairs = H * ((H+1)/2), strips = ((H+7)/8) * ((H+1)/2);
  dim3 g_old((pairs+255)/256, N*C), g_new((strips+255)/256, N*C);
  printf("fwd old   %.3f ms\n", med([&]{ old_fwd<<<g_old,256>>>(g, s, ws, s, x, w, y); }));
  printf("fwd strip %.3f ms\n", med([&]{ direct_fwd3_f32<<<g_new,256>>>(g, s, ws, s, x, w, y2, 1.f, 0.f); }));
  std::vector<float> a(n), b(n); cudaMemcpy(a.data(), y, n*4, cudaMemcpyDeviceToHost); cudaMemcpy(b.data(), y2, n*4, cudaMemcpyDeviceToHost);
  const bool fwd_same = a == b;
  printf("fwd bit-identical: %s\n", fwd_same ? "yes" : "NO");
  printf("bwd-data (one row per thread) %.3f ms\n", med([&]{ direct_bwd_data3_f32<<<g_old,256>>>(g, s, ws, s, x, w, y, 1.f, 0.f); }));
  const long slices = 25; float* part; cudaMalloc(&part, slices * C * 9 * 4);
  std::vector<double> wa(C*9, 0.0), wb(C*9, 0.0); std::vector<float> hp(slices*C*9);
  dim3 gw(C * slices);
  printf("wgrad old   %.3f ms\n", med([&]{ old_wgrad<<<gw,256>>>(g, s, s, x, y, part, slices); }));
  cudaMemcpy(hp.data(), part, hp.size()*4, cudaMemcpyDeviceToHost); for (size_t i = 0; i < hp.size(); ++i) wa[i % (C*9)] += hp[i];
  printf("wgrad strip %.3f ms\n", med([&]{ direct_wgrad3_f32<<<gw,256>>>(g, s, s, x, y, part, slices); }));
  cudaMemcpy(hp.data(), part, hp.size()*4, cudaMemcpyDeviceToHost); for (size_t i = 0; i < hp.size(); ++i) wb[i % (C*9)] += hp[i];
  double wr = 0, mx = 0; for (long i = 0; i < C*9; ++i) { wr = std::max(wr, fabs(wa[i]-wb[i])); mx = std::max(mx, fabs(wa[i])); }
  printf("wgrad max diff %.3g of %.3g  %s\n", wr, mx, cudaGetErrorString(cudaGetLastError()));
  return (fwd_same && wr <= 1e-6 * mx && cudaGetLastError() == cudaSuccess) ? 0 : 1;
}
