// Patch extraction for a convolution whose kernel equals its stride (ConvNeXt's stem and downsampling layers):
// x [N, C, H, W] (or, with channels_last, [N, H, W, C]) -> patches [N, H / p, W / q, C * p * q] (the rows and columns past the last whole patch are
// dropped, as the convolution drops them), and its backward (each input element gets its one patch element's
// gradient, the dropped ones zero). A pure data movement: exact. In Paddle's ops this was a slice, two reshapes of
// strided views (each a slow strided copy) and their three gradient nodes.
#include <cstring>
#include <vector>

#include "common.h"
#include "paddle/extension.h"

namespace {

using passl_ops::worth_threads;

// Logical sizes (N, C, H, W) and the element strides of the input's layout: NCHW, or NHWC when channels_last.
struct Dims {
  int64_t n, c, h, w, p, q, ho, wo, k;
  int64_t sn, sc, sy, sx;
};

Dims dims_of(const std::vector<int64_t>& x, int64_t p, int64_t q, bool channels_last) {
  const int64_t n = x[0], c = channels_last ? x[3] : x[1], h = channels_last ? x[1] : x[2];
  const int64_t w = channels_last ? x[2] : x[3];
  Dims d{n, c, h, w, p, q, h / p, w / q, c * p * q, c * h * w, 0, 0, 0};
  if (channels_last) {
    d.sc = 1, d.sy = w * c, d.sx = c;
  } else {
    d.sc = h * w, d.sy = w, d.sx = 1;
  }
  return d;
}

// Calls f(x_offset, patch_offset) for every element of the cropped input, one (sample, channel) plane per task.
template <typename F>
void for_each_element(const Dims& d, F f) {
#pragma omp parallel for schedule(static) if (worth_threads(d.n * d.c * d.h * d.w))
  for (int64_t nc = 0; nc < d.n * d.c; ++nc) {
    const int64_t s = nc / d.c, ch = nc % d.c;
    for (int64_t y = 0; y < d.ho * d.p; ++y) {
      const int64_t ho = y / d.p, i = y % d.p;
      const int64_t xrow = s * d.sn + ch * d.sc + y * d.sy;
      const int64_t prow = (s * d.ho + ho) * d.wo * d.k + (ch * d.p + i) * d.q;
      for (int64_t wo = 0; wo < d.wo; ++wo)
        for (int64_t j = 0; j < d.q; ++j) f(xrow + (wo * d.q + j) * d.sx, prow + wo * d.k + j);
    }
  }
}

}  // namespace

std::vector<paddle::Tensor> PatchifyForward(const paddle::Tensor& x, int64_t p, int64_t q, bool channels_last) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "passl_patchify: float32 CPU tensors only");
  PD_CHECK(x.shape().size() == 4 && p > 0 && q > 0, "passl_patchify: x [N, C, H, W] (or [N, H, W, C])");
  const Dims d = dims_of(x.shape(), p, q, channels_last);
  PD_CHECK(d.h >= p && d.w >= q, "passl_patchify: H >= p and W >= q");
  auto out = paddle::empty({d.n, d.ho, d.wo, d.k}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  float* od = out.data<float>();
  for_each_element(d, [=](int64_t xi, int64_t pi) { od[pi] = xd[xi]; });
  return {out};
}

std::vector<paddle::Tensor> PatchifyBackward(const paddle::Tensor& x, const paddle::Tensor& grad_out, int64_t p,
                                             int64_t q, bool channels_last) {
  const Dims d = dims_of(x.shape(), p, q, channels_last);
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  float* gxd = gx.data<float>();
  if (d.ho * p != d.h || d.wo * q != d.w) std::memset(gxd, 0, sizeof(float) * d.n * d.c * d.h * d.w);
  const float* gd = grad_out.data<float>();
  for_each_element(d, [=](int64_t xi, int64_t pi) { gxd[xi] = gd[pi]; });
  return {gx};
}

std::vector<std::vector<int64_t>> PatchifyInferShape(const std::vector<int64_t>& x, int64_t p, int64_t q,
                                                     bool channels_last) {
  if (channels_last) return {{x[0], x[1] / p, x[2] / q, x[3] * p * q}};
  return {{x[0], x[2] / p, x[3] / q, x[1] * p * q}};
}

PD_BUILD_OP(passl_patchify)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"p: int64_t", "q: int64_t", "channels_last: bool"})
    .SetKernelFn(PD_KERNEL(PatchifyForward))
    .SetInferShapeFn(PD_INFER_SHAPE(PatchifyInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(passl_ops::dtype_of_1));

PD_BUILD_GRAD_OP(passl_patchify)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"p: int64_t", "q: int64_t", "channels_last: bool"})
    .SetKernelFn(PD_KERNEL(PatchifyBackward));
