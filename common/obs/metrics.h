// The process's Prometheus registry, its HTTP exposer, and bucket layouts shared by all
// services so that dashboards can compare histograms across them.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace ctx::obs {

// The registry every metric of this process is registered in.
prometheus::Registry& Metrics();
std::shared_ptr<prometheus::Registry> MetricsShared();

// Serves Metrics() at http://<address>/metrics. address is "host:port" (port 0 picks a
// free port; see the returned exposer's GetListeningPorts()).
absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartMetricsExposer(
    const std::string& address);

// Durations: 1 ms .. 60 s (roughly x2-2.5 steps).
prometheus::Histogram::BucketBoundaries SecondsBuckets();
// Payload sizes: 1 KiB .. 1 GiB in powers of 4.
prometheus::Histogram::BucketBoundaries BytesBuckets();
// Unitless ratios such as compression ratios: 1 .. 32.
prometheus::Histogram::BucketBoundaries RatioBuckets();

}  // namespace ctx::obs
