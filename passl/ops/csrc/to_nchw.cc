// A channels-last tensor [N, H, W, C] copied to channels-first [N, C, H, W] (and the gradient back), in blocks that
// stay in cache. Paddle's transpose is a strided view, and the next op copied it through a slow generic path
// (about 5 ms per 1.2 MB here), in the forward and again for the gradient. A pure data movement: exact.
#include <algorithm>
#include <vector>

#include "common.h"
#include "paddle/extension.h"

namespace {

using passl_ops::worth_threads;

// dst[s][j][i] = src[s][i][j] for each of n matrices of rows x cols, in 32 x 32 tiles.
void transpose_batch(const float* src, float* dst, int64_t n, int64_t rows, int64_t cols) {
  constexpr int64_t T = 32;
#pragma omp parallel for schedule(static) if (worth_threads(n * rows * cols))
  for (int64_t s = 0; s < n; ++s) {
    const float* a = src + s * rows * cols;
    float* b = dst + s * rows * cols;
    for (int64_t i0 = 0; i0 < rows; i0 += T)
      for (int64_t j0 = 0; j0 < cols; j0 += T)
        for (int64_t j = j0; j < std::min(j0 + T, cols); ++j)
          for (int64_t i = i0; i < std::min(i0 + T, rows); ++i) b[j * rows + i] = a[i * cols + j];
  }
}

}  // namespace

std::vector<paddle::Tensor> ToNchwForward(const paddle::Tensor& x) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32 && x.shape().size() == 4,
           "passl_to_nchw: float32 CPU x [N, H, W, C] only");
  const auto& d = x.shape();
  auto out = paddle::empty({d[0], d[3], d[1], d[2]}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  transpose_batch(x.data<float>(), out.data<float>(), d[0], d[1] * d[2], d[3]);
  return {out};
}

std::vector<paddle::Tensor> ToNchwBackward(const paddle::Tensor& grad_out) {
  const auto& d = grad_out.shape();  // [N, C, H, W]
  auto gx = paddle::empty({d[0], d[2], d[3], d[1]}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  transpose_batch(grad_out.data<float>(), gx.data<float>(), d[0], d[1], d[2] * d[3]);
  return {gx};
}

std::vector<std::vector<int64_t>> ToNchwInferShape(const std::vector<int64_t>& x) {
  return {{x[0], x[3], x[1], x[2]}};
}

PD_BUILD_OP(passl_to_nchw)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(ToNchwForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ToNchwInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(passl_ops::dtype_of_1));

PD_BUILD_GRAD_OP(passl_to_nchw)
    .Inputs({paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .SetKernelFn(PD_KERNEL(ToNchwBackward));
