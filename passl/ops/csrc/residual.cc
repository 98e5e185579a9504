// The tail of a ConvNeXt block in one pass: out[n, c, h, w] = shortcut[n, c, h, w] + gamma[c] * branch[n, h, w, c]
// (layer scale, the channels-last -> channels-first transpose and the residual add), with its backward. In Paddle's
// own ops this was a multiply, a strided transpose view, an add and their gradient nodes (the gamma gradient a
// broadcast reduction): about a fifth of the demo's training step. Samples run in parallel; the gamma gradient is
// summed per thread in double, then across threads.
#include <cstring>
#include <vector>

#include <omp.h>

#include "paddle/extension.h"

namespace {

inline bool worth_threads(int64_t elements) { return elements >= (int64_t{1} << 16); }

void check_inputs(const paddle::Tensor& shortcut, const paddle::Tensor& branch, const paddle::Tensor& gamma) {
  for (const paddle::Tensor* t : {&shortcut, &branch, &gamma})
    PD_CHECK(t->is_cpu() && t->dtype() == paddle::DataType::FLOAT32, "passl_residual: float32 CPU tensors only");
  const auto& s = shortcut.shape();
  const auto& b = branch.shape();
  PD_CHECK(s.size() == 4 && b.size() == 4 && b[0] == s[0] && b[1] == s[2] && b[2] == s[3] && b[3] == s[1],
           "passl_residual: shortcut [N, C, H, W], branch [N, H, W, C]");
  PD_CHECK(gamma.numel() == s[1], "passl_residual: gamma must have C elements");
}

}  // namespace

std::vector<paddle::Tensor> ResidualForward(const paddle::Tensor& shortcut, const paddle::Tensor& branch,
                                            const paddle::Tensor& gamma) {
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
    for (int64_t ch = 0; ch < c; ++ch) {
      const float g = gd[ch];
      const float* sr = sd + (s * c + ch) * hw;
      float* o = od + (s * c + ch) * hw;
      for (int64_t p = 0; p < hw; ++p) o[p] = sr[p] + g * bs[p * c + ch];
    }
  }
  return {out};
}

std::vector<paddle::Tensor> ResidualBackward(const paddle::Tensor& branch, const paddle::Tensor& gamma,
                                             const paddle::Tensor& grad_out) {
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
      for (int64_t ch = 0; ch < c; ++ch) {
        const float g = gd[ch];
        const float* gr = go + (s * c + ch) * hw;
        float part = 0.0f;  // one sample's channel: at most H x W terms
        for (int64_t p = 0; p < hw; ++p) {
          gb[p * c + ch] = g * gr[p];
          part += gr[p] * bs[p * c + ch];
        }
        acc[ch] += part;
      }
    }
  }
  float* ggd = gga.data<float>();
  for (int64_t ch = 0; ch < c; ++ch) {
    double v = 0.0;
    for (int t = 0; t < teams; ++t) v += sums[static_cast<size_t>(t) * c + ch];
    ggd[ch] = static_cast<float>(v);
  }
  return {gs, gbr, gga};
}

std::vector<std::vector<int64_t>> ResidualInferShape(const std::vector<int64_t>& s, const std::vector<int64_t>& b,
                                                     const std::vector<int64_t>& g) {
  return {s};
}

std::vector<paddle::DataType> ResidualInferDtype(const paddle::DataType& s, const paddle::DataType& b,
                                                 const paddle::DataType& g) {
  return {s};
}

PD_BUILD_OP(passl_residual)
    .Inputs({"Shortcut", "Branch", "Gamma"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(ResidualForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ResidualInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ResidualInferDtype));

PD_BUILD_GRAD_OP(passl_residual)
    .Inputs({"Branch", "Gamma", paddle::Grad("Out")})
    .Outputs({paddle::Grad("Shortcut"), paddle::Grad("Branch"), paddle::Grad("Gamma")})
    .SetKernelFn(PD_KERNEL(ResidualBackward));
