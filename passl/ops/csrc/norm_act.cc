// LayerNorm over the last axis and the exact (erf) GELU on float32 CPU tensors, each with its backward.
// Rows run in parallel; the LayerNorm parameter gradients are summed per thread, then across threads. The GELU loops
// are vectorized through glibc's vector math library (erff/expf with -ffast-math; see build.py).
#include <cmath>
#include <cstring>
#include <vector>

#include <omp.h>

#include "gelu.h"
#include "common.h"
#include "paddle/extension.h"

namespace {

using passl_ops::worth_threads;

void check_float_cpu(const paddle::Tensor& t, const char* what) {
  PD_CHECK(t.is_cpu() && t.dtype() == paddle::DataType::FLOAT32, what, ": float32 CPU tensors only");
}

}  // namespace

// ---------------------------------------------------------------- LayerNorm over the last axis
std::vector<paddle::Tensor> LayerNormForward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                             const paddle::Tensor& bias, float eps) {
  check_float_cpu(x, "passl_layer_norm");
  const int64_t c = x.shape().back();
  PD_CHECK(weight.numel() == c && bias.numel() == c, "passl_layer_norm: weight and bias must have C elements");
  const int64_t m = x.numel() / c;
  auto out = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto mean = paddle::empty({m}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto rstd = paddle::empty({m}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* wd = weight.data<float>();
  const float* bd = bias.data<float>();
  float* od = out.data<float>();
  float* md = mean.data<float>();
  float* rd = rstd.data<float>();
#pragma omp parallel for schedule(static) if (worth_threads(m * c))
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = xd + r * c;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < c; ++j) s += xr[j];
    const float mu = s / static_cast<float>(c);
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < c; ++j) v += (xr[j] - mu) * (xr[j] - mu);
    const float rs = 1.0f / std::sqrt(v / static_cast<float>(c) + eps);
    float* o = od + r * c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) o[j] = (xr[j] - mu) * rs * wd[j] + bd[j];
    md[r] = mu;
    rd[r] = rs;
  }
  return {out, mean, rstd};
}

std::vector<paddle::Tensor> LayerNormBackward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                              const paddle::Tensor& mean, const paddle::Tensor& rstd,
                                              const paddle::Tensor& grad_out, float eps) {
  const int64_t c = x.shape().back();
  const int64_t m = x.numel() / c;
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gw = paddle::empty(weight.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gb = paddle::empty(weight.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* wd = weight.data<float>();
  const float* md = mean.data<float>();
  const float* rd = rstd.data<float>();
  const float* gd = grad_out.data<float>();
  float* gxd = gx.data<float>();
  const bool par = worth_threads(m * c);
  const int teams = par ? omp_get_max_threads() : 1;
  std::vector<double> sums(static_cast<size_t>(teams) * 2 * c, 0.0);  // per thread: [dweight | dbias]
#pragma omp parallel num_threads(teams) if (par)
  {
    const int t = omp_get_thread_num();
    std::vector<float> pw(c, 0.0f), pb(c, 0.0f);  // this thread's sums over a block of rows
    double* dw = sums.data() + static_cast<size_t>(t) * 2 * c;
    double* db = dw + c;
    int64_t rows_in_block = 0;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      const float* xr = xd + r * c;
      const float* g = gd + r * c;
      const float mu = md[r], rs = rd[r];
      float a = 0.0f, b = 0.0f;  // mean(g * w) and mean(g * w * xhat) times C
#pragma omp simd reduction(+ : a, b)
      for (int64_t j = 0; j < c; ++j) {
        const float xh = (xr[j] - mu) * rs;
        const float gw_ = g[j] * wd[j];
        a += gw_;
        b += gw_ * xh;
        pw[j] += g[j] * xh;
        pb[j] += g[j];
      }
      a /= static_cast<float>(c);
      b /= static_cast<float>(c);
      float* o = gxd + r * c;
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) o[j] = rs * (g[j] * wd[j] - a - (xr[j] - mu) * rs * b);
      if (++rows_in_block == 64) {  // flush the float partial sums into double every 64 rows
        for (int64_t j = 0; j < c; ++j) {
          dw[j] += pw[j];
          db[j] += pb[j];
          pw[j] = pb[j] = 0.0f;
        }
        rows_in_block = 0;
      }
    }
    for (int64_t j = 0; j < c; ++j) {
      dw[j] += pw[j];
      db[j] += pb[j];
    }
  }
  passl_ops::sum_team_partials(sums, teams, 2 * c, 0, c, gw.data<float>());
  passl_ops::sum_team_partials(sums, teams, 2 * c, c, c, gb.data<float>());
  return {gx, gw, gb};
}

std::vector<std::vector<int64_t>> LayerNormInferShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                      const std::vector<int64_t>& b) {
  int64_t m = 1;
  for (size_t i = 0; i + 1 < x.size(); ++i) m *= x[i];
  return {x, {m}, {m}};
}

PD_BUILD_OP(passl_layer_norm)
    .Inputs({"X", "Weight", "Bias"})
    .Outputs({"Out", "Mean", "Rstd"})
    .Attrs({"eps: float"})
    .SetKernelFn(PD_KERNEL(LayerNormForward))
    .SetInferShapeFn(PD_INFER_SHAPE(LayerNormInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(passl_ops::dtypes3_of_3));

PD_BUILD_GRAD_OP(passl_layer_norm)
    .Inputs({"X", "Weight", "Mean", "Rstd", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Weight"), paddle::Grad("Bias")})
    .Attrs({"eps: float"})
    .SetKernelFn(PD_KERNEL(LayerNormBackward));

// ---------------------------------------------------------------- exact GELU: x * Phi(x)
std::vector<paddle::Tensor> GeluForward(const paddle::Tensor& x) {
  check_float_cpu(x, "passl_gelu");
  auto out = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  float* od = out.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) od[i] = passl_gelu::value(xd[i]);
  return {out};
}

std::vector<paddle::Tensor> GeluBackward(const paddle::Tensor& x, const paddle::Tensor& grad_out) {
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* gd = grad_out.data<float>();
  float* o = gx.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) o[i] = gd[i] * passl_gelu::derivative(xd[i]);
  return {gx};
}

PD_BUILD_OP(passl_gelu)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(GeluForward));

PD_BUILD_GRAD_OP(passl_gelu)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .SetKernelFn(PD_KERNEL(GeluBackward));
