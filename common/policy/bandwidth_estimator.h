// BandwidthEstimator: EWMA of measured chunk throughputs on one kvcache→inference link.
//
//   measured  m_t = bytes_t / seconds_t                       (bytes per second)
//   estimate  B̂_t = alpha * m_t + (1 - alpha) * B̂_{t-1},      B̂_0 = cold-start value
//
// With Mean::kHarmonic the EWMA runs over seconds per byte instead (B̂ = 1 / EWMA(1/m)):
// the unbiased choice for predicting transfer TIME (S/B̂) when throughput varies, since the
// arithmetic mean of rates overestimates the rate (Jensen: E[1/m] >= 1/E[m]).
//
// It also tracks the mean absolute deviation, like TCP's RTTVAR (RFC 6298):
//   dev_t = alpha * |m_t - B̂_{t-1}| + (1 - alpha) * dev_{t-1},  dev = B̂ / 2 before the second
//   sample (as RFC 6298 seeds RTTVAR = R / 2)
// so a planner can use a conservative estimate  B̂_c = max(B̂ - K * dev, B̂ / 10).
//
// The first real sample replaces the cold-start value outright (the cold-start value is a
// guess, not a measurement, so it should not dampen the first observation). Samples with
// zero/negative/non-finite bytes or seconds are ignored. Pure: no clocks, time is passed in.
#ifndef CTX_COMMON_POLICY_BANDWIDTH_ESTIMATOR_H_
#define CTX_COMMON_POLICY_BANDWIDTH_ESTIMATOR_H_

#include <cstdint>

namespace ctx::policy {

class BandwidthEstimator {
 public:
  enum class Mean { kArithmetic, kHarmonic };

  // alpha in (0, 1]: weight of the newest sample (clamped). cold_start_bps: the estimate
  // before any sample arrives (bytes per second, > 0).
  explicit BandwidthEstimator(double alpha = 0.5, double cold_start_bps = 12.5e6,
                              Mean mean = Mean::kArithmetic);

  // Records one transfer of `bytes` that took `seconds`. Returns false (and changes nothing)
  // when the sample is unusable (bytes <= 0, seconds <= 0 or not finite).
  bool AddSample(double bytes, double seconds);

  double estimate_bps() const { return estimate_; }
  double deviation_bps() const { return deviation_; }
  // B̂ - k * deviation, never below B̂ / 10 (k <= 0 gives B̂).
  double conservative_bps(double k) const;
  // The smallest accepted measurement so far; 0 before any sample.
  double min_measured_bps() const { return min_measured_; }
  // The last accepted measurement in bytes per second; 0 before any sample.
  double last_measured_bps() const { return last_measured_; }
  int64_t samples() const { return samples_; }
  double alpha() const { return alpha_; }
  Mean mean() const { return mean_; }

  // Forgets all samples (back to the cold-start value).
  void Reset();

 private:
  double alpha_;
  double cold_start_;
  Mean mean_;
  double estimate_;
  double deviation_;
  double last_measured_ = 0.0;
  double min_measured_ = 0.0;
  int64_t samples_ = 0;
};

}  // namespace ctx::policy

#endif  // CTX_COMMON_POLICY_BANDWIDTH_ESTIMATOR_H_
