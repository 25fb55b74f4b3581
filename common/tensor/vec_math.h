// Branch-free float approximations of exp and erf, written so that loops calling them
// vectorize (no libm calls, no data-dependent branches). Shared by the Llama engine
// (softmax, SiLU) and the XLM-R classifier (softmax, exact GELU).
#pragma once

#include <bit>
#include <cstdint>

namespace ctx::tensor {

// exp(x) by range reduction x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2), Cephes'
// degree-6 polynomial for e^r (max rel. error ~1.5 ulp) and 2^n built in the exponent bits.
// x > 88 is clamped (exp(88) = 1.65e38); x < -87.3, -inf included, gives exactly 0 (e^-87.3
// is the smallest normal float).
inline float ExpApprox(float x) {
  const float xc = x > 88.0f ? 88.0f : (x < -87.3f ? -87.3f : x);
  const float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer (even ties)
  const float n = (xc * 1.44269504088896341f + kMagic) - kMagic;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return x < -87.3f ? 0.0f : p * std::bit_cast<float>(bits);
}

// erf(x) as x P(x^2) / Q(x^2) on x clamped to [-4, 4] (erf(4) rounds to 1 in float): the
// rational approximation of XLA / Eigen, max abs. error 4e-7 (checked in tests/tensor).
inline float ErfApprox(float x) {
  const float xc = x > 4.0f ? 4.0f : (x < -4.0f ? -4.0f : x);
  const float x2 = xc * xc;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  return xc * p / q;
}

}  // namespace ctx::tensor
