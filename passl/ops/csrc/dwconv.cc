// Depthwise "same" convolution (stride 1, padding k // 2, groups = channels) on NCHW float32 CPU tensors, with its
// bias fused, and its backward (input, weight and bias gradients).
//
// Each (sample, channel) plane is copied into a zero-padded buffer whose rows are rounded up to whole 8-float
// vectors, so the inner loops are branch-free. The forward keeps 4 output rows x 8 columns in vector registers while
// it walks the k x k taps (independent accumulators hide the FMA latency); the input gradient is the same loop over
// the output gradient with the flipped kernel; the weight gradient keeps the k taps of one kernel row in k vector
// accumulators. Planes are independent, so the forward runs in parallel over samples x channels, the backward over
// channels (each thread owns its channel's weight and bias sums: no reduction races). Kernel sizes 3, 5, 7 and 9.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"
#include "paddle/extension.h"

namespace {

typedef float v8 __attribute__((vector_size(32)));
constexpr int L = 8;   // floats per vector
constexpr int R = 4;   // output rows per register block

inline v8 loadu(const float* p) {
  v8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void storeu(float* p, v8 v) { std::memcpy(p, &v, sizeof(v)); }
inline v8 splat(float s) { return v8{s, s, s, s, s, s, s, s}; }
inline float hsum(v8 v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }
inline int round_up(int a, int b) { return (a + b - 1) / b * b; }

// Geometry of the padded buffers of one plane.
struct Geo {
  int h, w, k, p;
  int wl;  // w rounded up to a whole vector
  int hr;  // h rounded up to a whole row block
  int pw;  // padded row stride: wl + k - 1 (room for the last vector's taps)
  int ph;  // padded rows: hr + k - 1
  Geo(int h_, int w_, int k_) : h(h_), w(w_), k(k_), p(k_ / 2) {
    wl = round_up(w, L);
    hr = round_up(h, R);
    pw = wl + k - 1;
    ph = hr + k - 1;
  }
};

// Copy an h x w plane into the (ph x pw) buffer at offset (p, p); everything else zero.
inline void pad_plane(const float* src, const Geo& g, float* pad) {
  std::memset(pad, 0, sizeof(float) * static_cast<size_t>(g.ph) * g.pw);
  for (int y = 0; y < g.h; ++y)
    std::memcpy(pad + static_cast<int64_t>(y + g.p) * g.pw + g.p, src + static_cast<int64_t>(y) * g.w,
                sizeof(float) * g.w);
}

// out[y][x] = bias + sum_{i,j} ker[i][j] * pad[y + i][x + j] for y < h, x < w; tmp holds hr x wl floats.
template <int K>
void correlate_plane(const float* pad, const Geo& g, const float* ker, float bias, float* tmp, float* out) {
  for (int y0 = 0; y0 < g.hr; y0 += R) {
    for (int x0 = 0; x0 < g.wl; x0 += L) {
      v8 acc[R];
      for (int r = 0; r < R; ++r) acc[r] = splat(bias);
      for (int i = 0; i < K; ++i) {
        const float* base = pad + static_cast<int64_t>(y0 + i) * g.pw + x0;
        for (int j = 0; j < K; ++j) {
          const v8 kv = splat(ker[i * K + j]);
          for (int r = 0; r < R; ++r) acc[r] += kv * loadu(base + static_cast<int64_t>(r) * g.pw + j);
        }
      }
      for (int r = 0; r < R; ++r) storeu(tmp + static_cast<int64_t>(y0 + r) * g.wl + x0, acc[r]);
    }
  }
  for (int y = 0; y < g.h; ++y)
    std::memcpy(out + static_cast<int64_t>(y) * g.w, tmp + static_cast<int64_t>(y) * g.wl, sizeof(float) * g.w);
}

// acc[i][j] += sum_{y,x} grad[y][x] * xpad[y + i][x + j]; gpad holds the gradient with rows of stride wl (zero tail).
template <int K>
void weight_grad_plane(const float* gpad, const float* xpad, const Geo& g, double* acc) {
  for (int i = 0; i < K; ++i) {
    v8 a[K];
    for (int j = 0; j < K; ++j) a[j] = splat(0.0f);
    for (int y = 0; y < g.h; ++y) {
      const float* gr = gpad + static_cast<int64_t>(y) * g.wl;
      const float* xr = xpad + static_cast<int64_t>(y + i) * g.pw;
      for (int x0 = 0; x0 < g.wl; x0 += L) {
        const v8 gv = loadu(gr + x0);
        for (int j = 0; j < K; ++j) a[j] += gv * loadu(xr + x0 + j);
      }
    }
    for (int j = 0; j < K; ++j) acc[i * K + j] += hsum(a[j]);
  }
}

// Planes this small (the last stages of small inputs: 3 x 3, 1 x 1) are mostly padding for the vector loops above,
// so they run directly: each output sums only the taps that land inside the plane.
inline bool direct_plane(const Geo& g) { return g.w < 4 || static_cast<int64_t>(g.h) * g.w <= 16; }

template <int K>
void direct_forward_plane(const float* in, const Geo& g, const float* ker, float bias, float* out) {
  for (int y = 0; y < g.h; ++y) {
    const int i0 = std::max(0, g.p - y), i1 = std::min(K, g.h + g.p - y);
    for (int x = 0; x < g.w; ++x) {
      const int j0 = std::max(0, g.p - x), j1 = std::min(K, g.w + g.p - x);
      float acc = bias;
      for (int i = i0; i < i1; ++i)
        for (int j = j0; j < j1; ++j) acc += ker[i * K + j] * in[(y + i - g.p) * g.w + x + j - g.p];
      out[y * g.w + x] = acc;
    }
  }
}

// gx = 0, then every output gradient scatters to the inputs it read (gx) and to the taps it used (gw, in double)
template <int K>
void direct_backward_plane(const float* in, const float* grad, const Geo& g, const float* ker, float* gx,
                           double* gw, double* gb) {
  std::fill(gx, gx + static_cast<int64_t>(g.h) * g.w, 0.0f);
  for (int y = 0; y < g.h; ++y) {
    const int i0 = std::max(0, g.p - y), i1 = std::min(K, g.h + g.p - y);
    for (int x = 0; x < g.w; ++x) {
      const int j0 = std::max(0, g.p - x), j1 = std::min(K, g.w + g.p - x);
      const float go = grad[y * g.w + x];
      *gb += go;
      for (int i = i0; i < i1; ++i)
        for (int j = j0; j < j1; ++j) {
          const int src = (y + i - g.p) * g.w + x + j - g.p;
          gx[src] += go * ker[i * K + j];
          gw[i * K + j] += static_cast<double>(go) * in[src];
        }
    }
  }
}

// Small problems run on the calling thread: waking a team costs more than it saves there (and much more on a
// loaded machine, where the barrier waits for a descheduled thread).
inline bool worth_threads(int n, int c, int64_t hw, int k) {
  return static_cast<int64_t>(n) * c * hw * k * k >= (int64_t{1} << 22);
}

void check_inputs(const paddle::Tensor& x, const paddle::Tensor& weight, const paddle::Tensor& bias) {
  PD_CHECK(x.is_cpu() && weight.is_cpu() && bias.is_cpu(), "passl_dwconv: CPU tensors only");
  PD_CHECK(x.dtype() == paddle::DataType::FLOAT32 && weight.dtype() == paddle::DataType::FLOAT32 &&
               bias.dtype() == paddle::DataType::FLOAT32,
           "passl_dwconv: float32 only");
  PD_CHECK(x.shape().size() == 4 && weight.shape().size() == 4, "passl_dwconv: x [N, C, H, W], weight [C, 1, k, k]");
  const int64_t k = weight.shape()[2];
  PD_CHECK(weight.shape()[0] == x.shape()[1] && weight.shape()[1] == 1 && weight.shape()[3] == k &&
               (k == 3 || k == 5 || k == 7 || k == 9),
           "passl_dwconv: weight must be [C, 1, k, k] with k in 3, 5, 7, 9");
  PD_CHECK(bias.numel() == x.shape()[1], "passl_dwconv: bias must have C elements");
}

template <int K>
void forward_impl(const float* xd, const float* wd, const float* bd, float* od, int n, int c, const Geo& g) {
  const int64_t hw = static_cast<int64_t>(g.h) * g.w;
#pragma omp parallel if (worth_threads(n, c, hw, K))
  {
    std::vector<float> pad(static_cast<size_t>(g.ph) * g.pw), tmp(static_cast<size_t>(g.hr) * g.wl);
#pragma omp for schedule(static)
    for (int64_t nc = 0; nc < static_cast<int64_t>(n) * c; ++nc) {
      const int ch = static_cast<int>(nc % c);
      if (direct_plane(g)) {
        direct_forward_plane<K>(xd + nc * hw, g, wd + static_cast<int64_t>(ch) * K * K, bd[ch], od + nc * hw);
        continue;
      }
      pad_plane(xd + nc * hw, g, pad.data());
      correlate_plane<K>(pad.data(), g, wd + static_cast<int64_t>(ch) * K * K, bd[ch], tmp.data(), od + nc * hw);
    }
  }
}

template <int K>
void backward_impl(const float* xd, const float* wd, const float* gd, float* gxd, float* gwd, float* gbd, int n,
                   int c, const Geo& g) {
  const int64_t hw = static_cast<int64_t>(g.h) * g.w;
#pragma omp parallel if (worth_threads(n, c, hw, 2 * K))
  {
    std::vector<float> pad(static_cast<size_t>(g.ph) * g.pw), tmp(static_cast<size_t>(g.hr) * g.wl);
    std::vector<float> gpad(static_cast<size_t>(g.h) * g.wl, 0.0f);
    float flip[K * K];
    double acc[K * K];
#pragma omp for schedule(static)
    for (int ch = 0; ch < c; ++ch) {
      const float* ker = wd + static_cast<int64_t>(ch) * K * K;
      for (int t = 0; t < K * K; ++t) flip[t] = ker[K * K - 1 - t];
      std::fill(acc, acc + K * K, 0.0);
      double bsum = 0.0;
      for (int s = 0; s < n; ++s) {
        const int64_t off = (static_cast<int64_t>(s) * c + ch) * hw;
        const float* gr = gd + off;
        if (direct_plane(g)) {
          direct_backward_plane<K>(xd + off, gr, g, ker, gxd + off, acc, &bsum);
          continue;
        }
        // input gradient: the output gradient correlated with the flipped kernel
        pad_plane(gr, g, pad.data());
        correlate_plane<K>(pad.data(), g, flip, 0.0f, tmp.data(), gxd + off);
        // bias gradient, and the gradient with vector-rounded rows for the weight gradient
        for (int y = 0; y < g.h; ++y) {
          const float* src = gr + static_cast<int64_t>(y) * g.w;
          float rb = 0.0f;
          for (int x0 = 0; x0 < g.w; ++x0) rb += src[x0];
          bsum += rb;
          std::memcpy(gpad.data() + static_cast<int64_t>(y) * g.wl, src, sizeof(float) * g.w);
        }
        pad_plane(xd + off, g, pad.data());
        weight_grad_plane<K>(gpad.data(), pad.data(), g, acc);
      }
      for (int t = 0; t < K * K; ++t) gwd[static_cast<int64_t>(ch) * K * K + t] = static_cast<float>(acc[t]);
      gbd[ch] = static_cast<float>(bsum);
    }
  }
}

#define PASSL_DISPATCH_K(k, CALL) \
  switch (k) {                    \
    case 3: {                     \
      constexpr int KK = 3;       \
      CALL;                       \
    } break;                      \
    case 5: {                     \
      constexpr int KK = 5;       \
      CALL;                       \
    } break;                      \
    case 7: {                     \
      constexpr int KK = 7;       \
      CALL;                       \
    } break;                      \
    default: {                    \
      constexpr int KK = 9;       \
      CALL;                       \
    } break;                      \
  }

}  // namespace

std::vector<paddle::Tensor> DwConvForward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                          const paddle::Tensor& bias) {
  check_inputs(x, weight, bias);
  const int n = x.shape()[0], c = x.shape()[1];
  const Geo g(x.shape()[2], x.shape()[3], weight.shape()[2]);
  auto out = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  PASSL_DISPATCH_K(g.k, (forward_impl<KK>(x.data<float>(), weight.data<float>(), bias.data<float>(),
                                          out.data<float>(), n, c, g)));
  return {out};
}

std::vector<paddle::Tensor> DwConvBackward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                           const paddle::Tensor& bias, const paddle::Tensor& grad_out) {
  check_inputs(x, weight, bias);
  const int n = x.shape()[0], c = x.shape()[1];
  const Geo g(x.shape()[2], x.shape()[3], weight.shape()[2]);
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gw = paddle::empty(weight.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gb = paddle::empty(bias.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  PASSL_DISPATCH_K(g.k, (backward_impl<KK>(x.data<float>(), weight.data<float>(), grad_out.data<float>(),
                                           gx.data<float>(), gw.data<float>(), gb.data<float>(), n, c, g)));
  return {gx, gw, gb};
}

std::vector<std::vector<int64_t>> DwConvInferShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                   const std::vector<int64_t>& b) {
  return {x};
}

PD_BUILD_OP(passl_dwconv)
    .Inputs({"X", "Weight", "Bias"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(DwConvForward))
    .SetInferShapeFn(PD_INFER_SHAPE(DwConvInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(passl_ops::dtype_of_3));

PD_BUILD_GRAD_OP(passl_dwconv)
    .Inputs({"X", "Weight", "Bias", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Weight"), paddle::Grad("Bias")})
    .SetKernelFn(PD_KERNEL(DwConvBackward));
