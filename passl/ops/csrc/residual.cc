// The tail of a ConvNeXt block in one pass: out[n, c, h, w] = shortcut[n, c, h, w] + gamma[c] * branch[n, h, w, c]
// (layer scale, the channels-last -> channels-first transpose and the residual add), with its backward;
// passl_residual_drop also takes stochastic depth's per-sample factor (in Paddle's ops a scale, a broadcast multiply
// and their gradient nodes: about 40% of a ConvNeXt-T training step at drop path 0.1). In Paddle's
// own ops this was a multiply, a strided transpose view, an add and their gradient nodes (the gamma gradient a
// broadcast reduction): about a fifth of the demo's training step. Samples run in parallel; the gamma gradient is
// summed per thread in double, then across threads.
#include <cstring>
#include <vector>

#include <omp.h>

#include "common.h"
#include "paddle/extension.h"

namespace {

using passl_ops::worth_threads;

void check_inputs(const paddle::Tensor& shortcut, const paddle::Tensor& branch, const paddle::Tensor& gamma) {
  for (const paddle::Tensor* t : {&shortcut, &branch, &gamma})
    PD_CHECK(t->is_cpu() && t->dtype() == paddle::DataType::FLOAT32, "passl_residual: float32 CPU tensors only");
  const auto& s = shortcut.shape();
  const auto& b = branch.shape();
  PD_CHECK(s.size() == 4 && b.size() == 4 && b[0] == s[0] && b[1] == s[2] && b[2] == s[3] && b[3] == s[1],
           "passl_residual: shortcut [N, C, H, W], branch [N, H, W, C]");
  PD_CHECK(gamma.numel() == s[1], "passl_residual: gamma must have C elements");
}

// scale: nullptr, or one multiplier per sample (stochastic depth: 0 for a dropped branch, 1 / keep otherwise)
paddle::Tensor residual_forward(const paddle::Tensor& shortcut, const paddle::Tensor& branch,
                                const paddle::Tensor& gamma, const float* scale) {
  check_inputs(shortcut, branch, gamma);
  const int64_t n = shortcut.shape()[0], c = shortcut.shape()[1];
  const int64_t hw = shortcut.shape()[2] * shortcut.shape()[3];
  auto out = paddle::empty(shortcut.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* sd = shortcut.data<float>();
  const float* bd = branch.data<float>();
  const float* gd = gamma.data<float>();
  float* od = out.data<float>();
#pragma omp parallel for schedule(static) if (worth_threads(n * c * hw))
  for (int64_t s = 0; s < n; ++s) {
    const float* bs = bd + s * hw * c;
    const float k = scale ? scale[s] : 1.0f;
    for (int64_t ch = 0; ch < c; ++ch) {
      const float g = gd[ch];
      const float* sr = sd + (s * c + ch) * hw;
      float* o = od + (s * c + ch) * hw;
      if (!scale) {
        for (int64_t p = 0; p < hw; ++p) o[p] = sr[p] + g * bs[p * c + ch];
      } else {
        for (int64_t p = 0; p < hw; ++p) o[p] = sr[p] + (g * bs[p * c + ch]) * k;
      }
    }
  }
  return out;
}

std::vector<paddle::Tensor> residual_backward(const paddle::Tensor& branch, const paddle::Tensor& gamma,
                                              const paddle::Tensor& grad_out, const float* scale) {
  const int64_t n = grad_out.shape()[0], c = grad_out.shape()[1];
  const int64_t hw = grad_out.shape()[2] * grad_out.shape()[3];
  auto gs = paddle::empty(grad_out.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gbr = paddle::empty(branch.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gga = paddle::empty(gamma.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* bd = branch.data<float>();
  const float* gd = gamma.data<float>();
  const float* go = grad_out.data<float>();
  float* gsd = gs.data<float>();
  float* gbd = gbr.data<float>();
  std::memcpy(gsd, go, sizeof(float) * n * c * hw);  // the shortcut's gradient is the output's
  const bool par = worth_threads(n * c * hw);
  const int teams = par ? omp_get_max_threads() : 1;
  std::vector<double> sums(static_cast<size_t>(teams) * c, 0.0);
#pragma omp parallel num_threads(teams) if (par)
  {
    double* acc = sums.data() + static_cast<size_t>(omp_get_thread_num()) * c;
#pragma omp for schedule(static)
    for (int64_t s = 0; s < n; ++s) {
      const float* bs = bd + s * hw * c;
      float* gb = gbd + s * hw * c;
      const float k = scale ? scale[s] : 1.0f;
      for (int64_t ch = 0; ch < c; ++ch) {
        const float g = gd[ch];
        const float* gr = go + (s * c + ch) * hw;
        float part = 0.0f;  // one sample's channel: at most H x W terms
        if (!scale) {
          for (int64_t p = 0; p < hw; ++p) {
            gb[p * c + ch] = g * gr[p];
            part += gr[p] * bs[p * c + ch];
          }
        } else {
          for (int64_t p = 0; p < hw; ++p) {
            const float gk = gr[p] * k;  // the gradient reaching gamma * branch
            gb[p * c + ch] = g * gk;
            part += gk * bs[p * c + ch];
          }
        }
        acc[ch] += part;
      }
    }
  }
  passl_ops::sum_team_partials(sums, teams, c, 0, c, gga.data<float>());
  return {gs, gbr, gga};
}

const float* checked_scale(const paddle::Tensor& scale, const paddle::Tensor& shortcut) {
  PD_CHECK(scale.is_cpu() && scale.dtype() == paddle::DataType::FLOAT32 && scale.numel() == shortcut.shape()[0],
           "passl_residual_drop: scale must be N float32 values on the CPU");
  return scale.data<float>();
}

}  // namespace

std::vector<paddle::Tensor> ResidualForward(const paddle::Tensor& shortcut, const paddle::Tensor& branch,
                                            const paddle::Tensor& gamma) {
  return {residual_forward(shortcut, branch, gamma, nullptr)};
}

std::vector<paddle::Tensor> ResidualBackward(const paddle::Tensor& branch, const paddle::Tensor& gamma,
                                             const paddle::Tensor& grad_out) {
  return residual_backward(branch, gamma, grad_out, nullptr);
}

std::vector<paddle::Tensor> ResidualDropForward(const paddle::Tensor& shortcut, const paddle::Tensor& branch,
                                                const paddle::Tensor& gamma, const paddle::Tensor& scale) {
  return {residual_forward(shortcut, branch, gamma, checked_scale(scale, shortcut))};
}

std::vector<paddle::Tensor> ResidualDropBackward(const paddle::Tensor& branch, const paddle::Tensor& gamma,
                                                 const paddle::Tensor& scale, const paddle::Tensor& grad_out) {
  return residual_backward(branch, gamma, grad_out, checked_scale(scale, grad_out));
}

std::vector<std::vector<int64_t>> ResidualInferShape(const std::vector<int64_t>& s, const std::vector<int64_t>& b,
                                                     const std::vector<int64_t>& g) {
  return {s};
}

PD_BUILD_OP(passl_residual)
    .Inputs({"Shortcut", "Branch", "Gamma"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(ResidualForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ResidualInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(passl_ops::dtype_of_3));

PD_BUILD_GRAD_OP(passl_residual)
    .Inputs({"Branch", "Gamma", paddle::Grad("Out")})
    .Outputs({paddle::Grad("Shortcut"), paddle::Grad("Branch"), paddle::Grad("Gamma")})
    .SetKernelFn(PD_KERNEL(ResidualBackward));

std::vector<std::vector<int64_t>> ResidualDropInferShape(const std::vector<int64_t>& s, const std::vector<int64_t>& b,
                                                         const std::vector<int64_t>& g, const std::vector<int64_t>& k) {
  return {s};
}

// The same tail with stochastic depth: out = shortcut + scale[n] * gamma * branch (scale: 0 or 1 / keep per sample)
PD_BUILD_OP(passl_residual_drop)
    .Inputs({"Shortcut", "Branch", "Gamma", "Scale"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(ResidualDropForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ResidualDropInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(passl_ops::dtype_of_4));

PD_BUILD_GRAD_OP(passl_residual_drop)
    .Inputs({"Branch", "Gamma", "Scale", paddle::Grad("Out")})
    .Outputs({paddle::Grad("Shortcut"), paddle::Grad("Branch"), paddle::Grad("Gamma")})
    .SetKernelFn(PD_KERNEL(ResidualDropBackward));
