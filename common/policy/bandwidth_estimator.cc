#include "common/policy/bandwidth_estimator.h"

#include <algorithm>
#include <cmath>

namespace ctx::policy {

namespace {
constexpr double kMinAlpha = 1e-6;
constexpr double kMinColdStart = 1.0;  // 1 B/s: keeps estimates strictly positive
}  // namespace

BandwidthEstimator::BandwidthEstimator(double alpha, double cold_start_bps, Mean mean)
    : alpha_(std::isfinite(alpha) ? std::clamp(alpha, kMinAlpha, 1.0) : 0.5),
      cold_start_(std::isfinite(cold_start_bps) ? std::max(cold_start_bps, kMinColdStart)
                                                : kMinColdStart),
      mean_(mean),
      estimate_(cold_start_),
      deviation_(cold_start_ / 2) {}

bool BandwidthEstimator::AddSample(double bytes, double seconds) {
  if (!(bytes > 0.0) || !(seconds > 0.0) || !std::isfinite(bytes) || !std::isfinite(seconds)) {
    return false;
  }
  const double measured = bytes / seconds;
  if (!std::isfinite(measured)) return false;
  last_measured_ = measured;
  min_measured_ = samples_ == 0 ? measured : std::min(min_measured_, measured);
  if (samples_ == 0) {
    estimate_ = measured;
    deviation_ = measured / 2;  // like RFC 6298's RTTVAR = R / 2 on the first sample
  } else {
    deviation_ = alpha_ * std::abs(measured - estimate_) + (1.0 - alpha_) * deviation_;
    estimate_ = mean_ == Mean::kArithmetic
                    ? alpha_ * measured + (1.0 - alpha_) * estimate_
                    : 1.0 / (alpha_ / measured + (1.0 - alpha_) / estimate_);  // EWMA of s/B
  }
  ++samples_;
  return true;
}

double BandwidthEstimator::conservative_bps(double k) const {
  if (!(k > 0)) return estimate_;
  return std::max(estimate_ - k * deviation_, estimate_ / 10);
}

void BandwidthEstimator::Reset() {
  estimate_ = cold_start_;
  deviation_ = cold_start_ / 2;
  last_measured_ = 0.0;
  min_measured_ = 0.0;
  samples_ = 0;
}

}  // namespace ctx::policy
