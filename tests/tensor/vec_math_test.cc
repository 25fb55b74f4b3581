// tensor::ExpApprox / ErfApprox against libm over their whole useful range, and the edge
// values the softmax and GELU callers rely on.
#include "common/tensor/vec_math.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

namespace ctx::tensor {
namespace {

TEST_CASE("ExpApprox is within 2 ulp-ish of exp on [-87, 88]", "[tensor][vec_math]") {
  double worst = 0;
  for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(ExpApprox(x) - ref) / ref);
  }
  INFO("max relative error " << worst);
  CHECK(worst < 3e-7);
  CHECK(ExpApprox(0.0f) == 1.0f);
}

TEST_CASE("ExpApprox edges: -inf and far below give 0, far above is finite", "[tensor][vec_math]") {
  CHECK(ExpApprox(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(ExpApprox(-100.0f) == 0.0f);
  CHECK(std::isfinite(ExpApprox(1000.0f)));
  CHECK(ExpApprox(1000.0f) > 1e38f);
}

TEST_CASE("ErfApprox is within 5e-7 of erf, GELU within 1e-6", "[tensor][vec_math]") {
  double worst_erf = 0, worst_gelu = 0;
  for (float x = -8.0f; x < 8.0f; x += 0.00091f) {
    worst_erf = std::max(worst_erf, std::fabs(ErfApprox(x) - std::erf(static_cast<double>(x))));
    const double gelu = 0.5 * x * (1.0 + ErfApprox(x * 0.70710678f));
    const double ref = 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    worst_gelu = std::max(worst_gelu, std::fabs(gelu - ref));
  }
  INFO("erf " << worst_erf << " gelu " << worst_gelu);
  CHECK(worst_erf < 5e-7);
  CHECK(worst_gelu < 1e-6 * 8);  // |x| up to 8 scales the erf error
  CHECK(ErfApprox(0.0f) == 0.0f);
  CHECK(ErfApprox(10.0f) == Approx(1.0f).margin(1e-7));
  CHECK(ErfApprox(-10.0f) == Approx(-1.0f).margin(1e-7));
}

}  // namespace
}  // namespace ctx::tensor
