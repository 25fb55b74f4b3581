#include "common/policy/prefill_model.h"

#include <catch2/catch.hpp>
#include <vector>

namespace ctx::policy {
namespace {

double Truth(const PrefillCoefficients& k, double n0, double n1) {
  return k.a * (n1 - n0) + k.b * (n1 * n1 - n0 * n0) / 2 + k.c;
}

TEST_CASE("PrefillModel: fit recovers known coefficients from synthetic samples", "[policy]") {
  const PrefillCoefficients truth{4e-4, 3e-7, 0.02};
  std::vector<PrefillSample> samples;
  for (double n0 : {0.0, 512.0, 1024.0}) {
    for (double len : {64.0, 256.0, 1024.0}) {
      samples.push_back({n0, n0 + len, Truth(truth, n0, n0 + len)});
    }
  }
  absl::StatusOr<PrefillModel> fit = PrefillModel::Fit(samples);
  REQUIRE(fit.ok());
  CHECK(fit->coefficients().a == Approx(truth.a).epsilon(1e-6));
  CHECK(fit->coefficients().b == Approx(truth.b).epsilon(1e-6));
  CHECK(fit->coefficients().c == Approx(truth.c).epsilon(1e-6));
  CHECK(fit->Seconds(2048, 2080) == Approx(Truth(truth, 2048, 2080)).epsilon(1e-6));
}

TEST_CASE("PrefillModel: two measured speeds (ModelInfo.prefill_speed) fit a and b", "[policy]") {
  // kv-anchors §1: 1460 tok/s at 512, 869 tok/s at 2048.
  absl::StatusOr<PrefillModel> fit =
      PrefillModel::Fit({PrefillModel::FromSpeed(512, 1460), PrefillModel::FromSpeed(2048, 869)});
  REQUIRE(fit.ok());
  CHECK(fit->Seconds(0, 512) == Approx(512.0 / 1460).epsilon(1e-6));
  CHECK(fit->Seconds(0, 2048) == Approx(2048.0 / 869).epsilon(1e-6));
  CHECK(fit->coefficients().b > 0);  // attention term: longer prefixes cost more per token
}

TEST_CASE("PrefillModel: defaults match the anchors and grow with the prefix", "[policy]") {
  PrefillModel m;
  CHECK(m.Seconds(0, 512) == Approx(0.351).epsilon(0.01));
  CHECK(m.Seconds(0, 2048) == Approx(2.357).epsilon(0.01));
  CHECK(m.Seconds(1000, 1100) > m.Seconds(0, 100));
  CHECK(m.Seconds(0, 0) == 0.0);
  CHECK(m.Seconds(500, 100) == 0.0);
}

TEST_CASE("PrefillModel: never negative, bad inputs are errors", "[policy]") {
  // Samples with a large "negative overhead" shape: an unconstrained fit would give c < 0.
  std::vector<PrefillSample> s = {{0, 100, 0.001}, {0, 1000, 0.9}, {0, 2000, 1.9}};
  absl::StatusOr<PrefillModel> fit = PrefillModel::Fit(s);
  REQUIRE(fit.ok());
  CHECK(fit->coefficients().a >= 0);
  CHECK(fit->coefficients().b >= 0);
  CHECK(fit->coefficients().c >= 0);
  for (double n : {0.0, 1.0, 10.0, 100.0, 5000.0}) CHECK(fit->Seconds(0, n) >= 0);

  CHECK_FALSE(PrefillModel::Fit({}).ok());
  CHECK_FALSE(PrefillModel::Fit({{10, 5, 1.0}, {0, 100, -1.0}}).ok());
  CHECK(PrefillModel(PrefillCoefficients{-1, -1, -1}).Seconds(0, 100) == 0.0);
}

}  // namespace
}  // namespace ctx::policy
