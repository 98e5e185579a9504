// LayerNorm over the channels of an NCHW tensor, written channels-last: x [N, C, H, W] -> out [N, H, W, C] (the
// ConvNeXt block's transpose after the depthwise convolution and its LayerNorm in one pass), with its backward
// (grad_out [N, H, W, C] -> grad_x [N, C, H, W]). Before, LayerNorm read a strided transpose view, which Paddle
// first copied through its slow strided path. Per sample, the statistics run over channels as vectors over pixels
// (two passes: mean, then the centred variance, as the row kernel); samples run in parallel; the weight and bias
// gradients are summed per thread in double, then across threads.
#include <cmath>
#include <vector>

#include <omp.h>

#include "common.h"
#include "paddle/extension.h"

namespace {
using passl_ops::worth_threads;
}  // namespace

std::vector<paddle::Tensor> NormCfForward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                          const paddle::Tensor& bias, float eps) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32 && x.shape().size() == 4,
           "passl_layer_norm_cf: float32 CPU x [N, C, H, W] only");
  const int64_t n = x.shape()[0], c = x.shape()[1], hw = x.shape()[2] * x.shape()[3];
  PD_CHECK(weight.numel() == c && bias.numel() == c, "passl_layer_norm_cf: weight and bias must have C elements");
  auto out = paddle::empty({n, x.shape()[2], x.shape()[3], c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto mean = paddle::empty({n * hw}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto rstd = paddle::empty({n * hw}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* wd = weight.data<float>();
  const float* bd = bias.data<float>();
  float* od = out.data<float>();
  float* md = mean.data<float>();
  float* rd = rstd.data<float>();
  const float inv_c = 1.0f / static_cast<float>(c);
#pragma omp parallel for schedule(static) if (worth_threads(n * c * hw))
  for (int64_t s = 0; s < n; ++s) {
    const float* xs = xd + s * c * hw;
    float* mu = md + s * hw;
    float* rs = rd + s * hw;
    for (int64_t p = 0; p < hw; ++p) mu[p] = 0.0f, rs[p] = 0.0f;
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* xr = xs + ch * hw;
#pragma omp simd
      for (int64_t p = 0; p < hw; ++p) mu[p] += xr[p];
    }
    for (int64_t p = 0; p < hw; ++p) mu[p] *= inv_c;
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* xr = xs + ch * hw;
#pragma omp simd
      for (int64_t p = 0; p < hw; ++p) rs[p] += (xr[p] - mu[p]) * (xr[p] - mu[p]);
    }
    for (int64_t p = 0; p < hw; ++p) rs[p] = 1.0f / std::sqrt(rs[p] * inv_c + eps);
    float* os = od + s * hw * c;
    for (int64_t p = 0; p < hw; ++p) {
      const float m = mu[p], r = rs[p];
      float* o = os + p * c;
      for (int64_t ch = 0; ch < c; ++ch) o[ch] = (xs[ch * hw + p] - m) * r * wd[ch] + bd[ch];
    }
  }
  return {out, mean, rstd};
}

std::vector<paddle::Tensor> NormCfBackward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                           const paddle::Tensor& mean, const paddle::Tensor& rstd,
                                           const paddle::Tensor& grad_out, float eps) {
  const int64_t n = x.shape()[0], c = x.shape()[1], hw = x.shape()[2] * x.shape()[3];
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gw = paddle::empty(weight.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gb = paddle::empty(weight.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* wd = weight.data<float>();
  const float* md = mean.data<float>();
  const float* rd = rstd.data<float>();
  const float* gd = grad_out.data<float>();
  float* gxd = gx.data<float>();
  const bool par = worth_threads(n * c * hw);
  const int teams = par ? omp_get_max_threads() : 1;
  std::vector<double> sums(static_cast<size_t>(teams) * 2 * c, 0.0);  // per thread: [dweight | dbias]
  const float inv_c = 1.0f / static_cast<float>(c);
#pragma omp parallel num_threads(teams) if (par)
  {
    double* dw = sums.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * c;
    double* db = dw + c;
    std::vector<float> pw(c), pb(c), a(hw), b(hw);
#pragma omp for schedule(static)
    for (int64_t s = 0; s < n; ++s) {
      const float* xs = xd + s * c * hw;
      const float* gs = gd + s * hw * c;
      const float* mu = md + s * hw;
      const float* rs = rd + s * hw;
      float* gxs = gxd + s * c * hw;
      for (int64_t ch = 0; ch < c; ++ch) pw[ch] = pb[ch] = 0.0f;  // this sample's sums (H x W terms each)
      for (int64_t p = 0; p < hw; ++p) {
        const float* g = gs + p * c;
        const float m = mu[p], r = rs[p];
        float sa = 0.0f, sb = 0.0f;  // mean(g * w) and mean(g * w * xhat) times C
        for (int64_t ch = 0; ch < c; ++ch) {
          const float xh = (xs[ch * hw + p] - m) * r;
          const float gw_ = g[ch] * wd[ch];
          sa += gw_;
          sb += gw_ * xh;
          pw[ch] += g[ch] * xh;
          pb[ch] += g[ch];
        }
        a[p] = sa * inv_c;
        b[p] = sb * inv_c;
      }
      for (int64_t ch = 0; ch < c; ++ch) {
        dw[ch] += pw[ch];
        db[ch] += pb[ch];
        const float w = wd[ch];
        const float* xr = xs + ch * hw;
        float* o = gxs + ch * hw;
        for (int64_t p = 0; p < hw; ++p)
          o[p] = rs[p] * (gs[p * c + ch] * w - a[p] - (xr[p] - mu[p]) * rs[p] * b[p]);
      }
    }
  }
  passl_ops::sum_team_partials(sums, teams, 2 * c, 0, c, gw.data<float>());
  passl_ops::sum_team_partials(sums, teams, 2 * c, c, c, gb.data<float>());
  return {gx, gw, gb};
}

std::vector<std::vector<int64_t>> NormCfInferShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                   const std::vector<int64_t>& b) {
  return {{x[0], x[2], x[3], x[1]}, {x[0] * x[2] * x[3]}, {x[0] * x[2] * x[3]}};
}

PD_BUILD_OP(passl_layer_norm_cf)
    .Inputs({"X", "Weight", "Bias"})
    .Outputs({"Out", "Mean", "Rstd"})
    .Attrs({"eps: float"})
    .SetKernelFn(PD_KERNEL(NormCfForward))
    .SetInferShapeFn(PD_INFER_SHAPE(NormCfInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(passl_ops::dtypes3_of_3));

PD_BUILD_GRAD_OP(passl_layer_norm_cf)
    .Inputs({"X", "Weight", "Mean", "Rstd", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Weight"), paddle::Grad("Bias")})
    .Attrs({"eps: float"})
    .SetKernelFn(PD_KERNEL(NormCfBackward));
