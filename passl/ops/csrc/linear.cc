// Linear layer y = x @ weight + bias (Paddle's layout: weight [in, out]) on float32 CPU tensors, with its backward,
// on the sgemm of the MKL runtime that Paddle's CPU wheel ships (libmklml_intel): Paddle's own matmul ran at about a
// third of it here, and its broadcast bias-add gradient was a separate slow reduction. Compiled only when build.py
// finds that library (it defines PASSL_WITH_CBLAS).
#ifdef PASSL_WITH_CBLAS
#include <cstring>
#include <vector>

#include <omp.h>

#include "gelu.h"
#include "common.h"
#include "paddle/extension.h"

extern "C" {
// The standard CBLAS prototype (row-major = 101, no-trans = 111, trans = 112).
void cblas_sgemm(int layout, int transa, int transb, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc);
}

namespace {
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
using passl_ops::worth_threads;

// out[j] = sum over rows r < m of what row(r, part) adds to part[j] (row may also write its own outputs): per-thread
// float partials over blocks of 64 rows, flushed into double, then summed across threads.
template <class Row>
void column_sums(int64_t m, int64_t n, Row row, float* out) {
  const bool par = worth_threads(m * n);
  const int teams = par ? omp_get_max_threads() : 1;
  std::vector<double> sums(static_cast<size_t>(teams) * n, 0.0);
#pragma omp parallel num_threads(teams) if (par)
  {
    double* acc = sums.data() + static_cast<size_t>(omp_get_thread_num()) * n;
    std::vector<float> part(n, 0.0f);
    int rows = 0;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      row(r, part.data());
      if (++rows == 64) {
        for (int64_t j = 0; j < n; ++j) acc[j] += part[j], part[j] = 0.0f;
        rows = 0;
      }
    }
    for (int64_t j = 0; j < n; ++j) acc[j] += part[j];
  }
  passl_ops::sum_team_partials(sums, teams, n, 0, n, out);
}

// Checks x [..., in], weight [in, out], bias [out] (float32, CPU) and returns the output shape [..., out].
std::vector<int64_t> linear_out_shape(const paddle::Tensor& x, const paddle::Tensor& weight, const paddle::Tensor& bias,
                                      const char* op) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, op, ": float32 CPU tensors only");
  PD_CHECK(weight.shape().size() == 2 && x.shape().back() == weight.shape()[0] && bias.numel() == weight.shape()[1],
           op, ": x [..., in], weight [in, out], bias [out]");
  std::vector<int64_t> shape = x.shape();
  shape.back() = weight.shape()[1];
  return shape;
}

}  // namespace

std::vector<paddle::Tensor> LinearForward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                          const paddle::Tensor& bias) {
  const std::vector<int64_t> shape = linear_out_shape(x, weight, bias, "passl_linear");
  const int64_t k = weight.shape()[0], n = weight.shape()[1], m = x.numel() / k;
  auto out = paddle::empty(shape, paddle::DataType::FLOAT32, paddle::CPUPlace());
  float* o = out.data<float>();
  const float* b = bias.data<float>();
#pragma omp parallel for schedule(static) if (worth_threads(m * n))
  for (int64_t r = 0; r < m; ++r) std::memcpy(o + r * n, b, sizeof(float) * n);
  cblas_sgemm(kRowMajor, kNoTrans, kNoTrans, m, n, k, 1.0f, x.data<float>(), k, weight.data<float>(), n, 1.0f, o, n);
  return {out};
}

std::vector<paddle::Tensor> LinearBackward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                           const paddle::Tensor& grad_out) {
  const int64_t k = weight.shape()[0], n = weight.shape()[1], m = x.numel() / k;
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gw = paddle::empty(weight.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gb = paddle::empty({n}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* g = grad_out.data<float>();
  // dx = dy @ weight^T, dweight = x^T @ dy
  cblas_sgemm(kRowMajor, kNoTrans, kTrans, m, k, n, 1.0f, g, n, weight.data<float>(), n, 0.0f, gx.data<float>(), k);
  cblas_sgemm(kRowMajor, kTrans, kNoTrans, k, n, m, 1.0f, x.data<float>(), k, g, n, 0.0f, gw.data<float>(), n);
  column_sums(m, n, [g, n](int64_t r, float* part) {
    const float* gr = g + r * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) part[j] += gr[j];
  }, gb.data<float>());
  return {gx, gw, gb};
}

std::vector<std::vector<int64_t>> LinearInferShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                   const std::vector<int64_t>& b) {
  std::vector<int64_t> out = x;
  out.back() = w[1];
  return {out};
}

PD_BUILD_OP(passl_linear)
    .Inputs({"X", "Weight", "Bias"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(LinearForward))
    .SetInferShapeFn(PD_INFER_SHAPE(LinearInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(passl_ops::dtype_of_3));

PD_BUILD_GRAD_OP(passl_linear)
    .Inputs({"X", "Weight", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Weight"), paddle::Grad("Bias")})
    .SetKernelFn(PD_KERNEL(LinearBackward));

// fc1 + GELU of a ConvNeXt block: out = gelu(x @ weight + bias). The GEMM writes x @ weight without the bias
// (PreAct, kept for the backward) and one pass adds the bias and applies GELU; the backward's pass computes the
// pre-activation gradient and the bias gradient (its column sums) together. Against passl_linear + passl_gelu this
// saves a bias fill, the GEMM's read of it and a separate column-sum pass over the largest tensors of the block.
std::vector<paddle::Tensor> LinearGeluForward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                              const paddle::Tensor& bias) {
  const std::vector<int64_t> shape = linear_out_shape(x, weight, bias, "passl_linear_gelu");
  const int64_t k = weight.shape()[0], n = weight.shape()[1], m = x.numel() / k;
  auto pre = paddle::empty(shape, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto out = paddle::empty(shape, paddle::DataType::FLOAT32, paddle::CPUPlace());
  float* p = pre.data<float>();
  float* o = out.data<float>();
  const float* b = bias.data<float>();
  cblas_sgemm(kRowMajor, kNoTrans, kNoTrans, m, n, k, 1.0f, x.data<float>(), k, weight.data<float>(), n, 0.0f, p, n);
#pragma omp parallel for schedule(static) if (worth_threads(m * n))
  for (int64_t r = 0; r < m; ++r) {
    const float* pr = p + r * n;
    float* orow = o + r * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) orow[j] = passl_gelu::value(pr[j] + b[j]);
  }
  return {out, pre};
}

std::vector<paddle::Tensor> LinearGeluBackward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                               const paddle::Tensor& bias, const paddle::Tensor& pre,
                                               const paddle::Tensor& grad_out) {
  const int64_t k = weight.shape()[0], n = weight.shape()[1], m = x.numel() / k;
  auto gz = paddle::empty(pre.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gw = paddle::empty(weight.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gb = paddle::empty({n}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* p = pre.data<float>();
  const float* g = grad_out.data<float>();
  const float* b = bias.data<float>();
  float* z = gz.data<float>();
  column_sums(m, n, [=](int64_t r, float* part) {
    const float* pr = p + r * n;
    const float* gr = g + r * n;
    float* zr = z + r * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      zr[j] = gr[j] * passl_gelu::derivative(pr[j] + b[j]);
      part[j] += zr[j];
    }
  }, gb.data<float>());
  cblas_sgemm(kRowMajor, kNoTrans, kTrans, m, k, n, 1.0f, z, n, weight.data<float>(), n, 0.0f, gx.data<float>(), k);
  cblas_sgemm(kRowMajor, kTrans, kNoTrans, k, n, m, 1.0f, x.data<float>(), k, z, n, 0.0f, gw.data<float>(), n);
  return {gx, gw, gb};
}

std::vector<std::vector<int64_t>> LinearGeluInferShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                       const std::vector<int64_t>& b) {
  std::vector<int64_t> out = x;
  out.back() = w[1];
  return {out, out};
}

PD_BUILD_OP(passl_linear_gelu)
    .Inputs({"X", "Weight", "Bias"})
    .Outputs({"Out", "PreAct"})
    .SetKernelFn(PD_KERNEL(LinearGeluForward))
    .SetInferShapeFn(PD_INFER_SHAPE(LinearGeluInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(passl_ops::dtypes2_of_3));

PD_BUILD_GRAD_OP(passl_linear_gelu)
    .Inputs({"X", "Weight", "Bias", "PreAct", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Weight"), paddle::Grad("Bias")})
    .SetKernelFn(PD_KERNEL(LinearGeluBackward));
#endif  // PASSL_WITH_CBLAS
