// What every passl.ops kernel file shares: when a loop is worth an OpenMP team, and the dtype functions of ops whose
// outputs all take the first input's dtype (float32 here).
#pragma once
#include <cstdint>
#include <vector>

#include "paddle/extension.h"

namespace passl_ops {

// Below this many elements a loop runs on the calling thread: waking a team costs more than it saves.
inline bool worth_threads(int64_t elements) { return elements >= (int64_t{1} << 16); }

// out[j] = sum over the teams' double partials sums[t * stride + offset + j], t < teams, j < count (the last step of
// the per-thread parameter-gradient sums: each thread owns a row of partials, no atomics)
inline void sum_team_partials(const std::vector<double>& sums, int teams, int64_t stride, int64_t offset, int64_t count,
                              float* out) {
  for (int64_t j = 0; j < count; ++j) {
    double v = 0.0;
    for (int t = 0; t < teams; ++t) v += sums[static_cast<size_t>(t) * stride + offset + j];
    out[j] = static_cast<float>(v);
  }
}

using Dtype = paddle::DataType;
using Dtypes = std::vector<paddle::DataType>;

// One output, as the first of 1 / 3 / 4 inputs.
inline Dtypes dtype_of_1(const Dtype& x) { return {x}; }
inline Dtypes dtype_of_3(const Dtype& x, const Dtype&, const Dtype&) { return {x}; }
inline Dtypes dtype_of_4(const Dtype& x, const Dtype&, const Dtype&, const Dtype&) { return {x}; }
// Two / three outputs of 3 inputs, all as the first.
inline Dtypes dtypes2_of_3(const Dtype& x, const Dtype&, const Dtype&) { return {x, x}; }
inline Dtypes dtypes3_of_3(const Dtype& x, const Dtype&, const Dtype&) { return {x, x, x}; }

}  // namespace passl_ops
