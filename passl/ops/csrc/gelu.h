// The exact (erf) GELU and its derivative, shared by norm_act.cc (passl_gelu) and linear.cc (passl_linear_gelu).
// With -ffast-math (build.py) GCC vectorizes loops over these through glibc's vector erff/expf.
#pragma once
#include <cmath>

namespace passl_gelu {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

inline float value(float v) { return 0.5f * v * (1.0f + erff(v * kInvSqrt2)); }

// d gelu / dv = Phi(v) + v * phi(v)
inline float derivative(float v) {
  return 0.5f * (1.0f + erff(v * kInvSqrt2)) + v * kInvSqrt2Pi * expf(-0.5f * v * v);
}

}  // namespace passl_gelu
