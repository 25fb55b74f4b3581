#include "common/policy/bandwidth_estimator.h"

#include <algorithm>
#include <cmath>

namespace ctx::policy {

namespace {
constexpr double kMinAlpha = 1e-6;
constexpr double kMinColdStart = 1.0;  // 1 B/s: keeps estimates strictly positive
}  // namespace

BandwidthEstimator::BandwidthEstimator(double alpha, double cold_start_bps)
    : alpha_(std::isfinite(alpha) ? std::clamp(alpha, kMinAlpha, 1.0) : 0.5),
      cold_start_(std::isfinite(cold_start_bps) ? std::max(cold_start_bps, kMinColdStart)
                                                : kMinColdStart),
      estimate_(cold_start_) {}

bool BandwidthEstimator::AddSample(double bytes, double seconds) {
  if (!(bytes > 0.0) || !(seconds > 0.0) || !std::isfinite(bytes) || !std::isfinite(seconds)) {
    return false;
  }
  const double measured = bytes / seconds;
  if (!std::isfinite(measured)) return false;
  last_measured_ = measured;
  estimate_ = samples_ == 0 ? measured : alpha_ * measured + (1.0 - alpha_) * estimate_;
  ++samples_;
  return true;
}

void BandwidthEstimator::Reset() {
  estimate_ = cold_start_;
  last_measured_ = 0.0;
  samples_ = 0;
}

}  // namespace ctx::policy
