#include "common/obs/metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace ctx::obs {

std::shared_ptr<prometheus::Registry> MetricsShared() {
  static const auto* registry =
      new std::shared_ptr<prometheus::Registry>(std::make_shared<prometheus::Registry>());
  return *registry;
}

prometheus::Registry& Metrics() { return *MetricsShared(); }

absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartMetricsExposer(
    const std::string& address) {
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1);
    exposer->RegisterCollectable(MetricsShared());
    return exposer;
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
}

prometheus::Histogram::BucketBoundaries SecondsBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60};
}

prometheus::Histogram::BucketBoundaries BytesBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 1024; v <= 1024.0 * 1024 * 1024; v *= 4) b.push_back(v);
  return b;
}

prometheus::Histogram::BucketBoundaries RatioBuckets() {
  return {1, 1.5, 2, 3, 4, 6, 8, 12, 16, 32};
}

}  // namespace ctx::obs
