#include "common/policy/bandwidth_estimator.h"

#include <catch2/catch.hpp>
#include <limits>

namespace ctx::policy {
namespace {

TEST_CASE("BandwidthEstimator: cold start, then EWMA computed by hand", "[policy]") {
  BandwidthEstimator e(/*alpha=*/0.25, /*cold_start_bps=*/100.0);
  CHECK(e.estimate_bps() == 100.0);
  CHECK(e.last_measured_bps() == 0.0);
  CHECK(e.samples() == 0);

  // The first sample replaces the cold-start guess: 1000 B / 2 s = 500 B/s.
  REQUIRE(e.AddSample(1000, 2));
  CHECK(e.estimate_bps() == Approx(500.0));
  CHECK(e.last_measured_bps() == Approx(500.0));

  // 300 B/s: 0.25 * 300 + 0.75 * 500 = 450.
  REQUIRE(e.AddSample(300, 1));
  CHECK(e.estimate_bps() == Approx(450.0));
  CHECK(e.last_measured_bps() == Approx(300.0));

  // Zero / negative / non-finite samples are ignored.
  CHECK_FALSE(e.AddSample(0, 1));
  CHECK_FALSE(e.AddSample(100, 0));
  CHECK_FALSE(e.AddSample(-5, 1));
  CHECK_FALSE(e.AddSample(100, -1));
  CHECK_FALSE(e.AddSample(std::numeric_limits<double>::infinity(), 1));
  CHECK_FALSE(e.AddSample(100, std::numeric_limits<double>::quiet_NaN()));
  CHECK(e.estimate_bps() == Approx(450.0));
  CHECK(e.last_measured_bps() == Approx(300.0));
  CHECK(e.samples() == 2);

  // 1200 B/s: 0.25 * 1200 + 0.75 * 450 = 637.5.
  REQUIRE(e.AddSample(600, 0.5));
  CHECK(e.estimate_bps() == Approx(637.5));

  e.Reset();
  CHECK(e.estimate_bps() == 100.0);
  CHECK(e.samples() == 0);
}

TEST_CASE("BandwidthEstimator: deviation, conservative estimate, minimum", "[policy]") {
  BandwidthEstimator e(0.5, 100.0);
  CHECK(e.deviation_bps() == Approx(50.0));  // cold start / 2
  CHECK(e.conservative_bps(1.0) == Approx(50.0));
  e.AddSample(200, 1);  // B = 200, dev = 100 (first sample: m / 2)
  CHECK(e.deviation_bps() == Approx(100.0));
  e.AddSample(100, 1);  // dev = 0.5*|100-200| + 0.5*100 = 100; B = 150
  CHECK(e.estimate_bps() == Approx(150.0));
  CHECK(e.deviation_bps() == Approx(100.0));
  CHECK(e.conservative_bps(1.0) == Approx(50.0));
  CHECK(e.conservative_bps(2.0) == Approx(15.0));  // floor: B / 10
  CHECK(e.conservative_bps(0.0) == Approx(150.0));
  CHECK(e.min_measured_bps() == Approx(100.0));
}

TEST_CASE("BandwidthEstimator: harmonic mean averages seconds per byte", "[policy]") {
  BandwidthEstimator e(0.5, 1.0, BandwidthEstimator::Mean::kHarmonic);
  e.AddSample(100, 1);  // 100 B/s
  e.AddSample(100, 4);  // 25 B/s: 1 / (0.5/25 + 0.5/100) = 40
  CHECK(e.estimate_bps() == Approx(40.0));
}

TEST_CASE("BandwidthEstimator: alpha 1 tracks the last sample, bad alpha is clamped", "[policy]") {
  BandwidthEstimator last(1.0, 10.0);
  last.AddSample(100, 1);
  last.AddSample(40, 1);
  CHECK(last.estimate_bps() == Approx(40.0));

  BandwidthEstimator clamped(7.0, -3.0);  // alpha -> 1, cold start -> 1 B/s
  CHECK(clamped.alpha() == 1.0);
  CHECK(clamped.estimate_bps() == 1.0);
}

}  // namespace
}  // namespace ctx::policy
