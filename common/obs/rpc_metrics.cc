#include "common/obs/rpc_metrics.h"

#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "common/obs/metrics.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace ctx::obs {
namespace {

using Clock = std::chrono::steady_clock;
using grpc::experimental::InterceptionHookPoints;

constexpr const char* kCodeNames[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

struct RpcFamilies {
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("ctxstream_rpc_requests_total")
          .Help("gRPC requests handled, by method and status code.")
          .Register(Metrics());
  prometheus::Family<prometheus::Histogram>& duration =
      prometheus::BuildHistogram()
          .Name("ctxstream_rpc_duration_seconds")
          .Help("gRPC request duration from arrival to status, by method.")
          .Register(Metrics());
  prometheus::Family<prometheus::Gauge>& in_flight =
      prometheus::BuildGauge()
          .Name("ctxstream_rpc_in_flight")
          .Help("gRPC requests in progress, by method.")
          .Register(Metrics());
};

RpcFamilies& Families() {
  static RpcFamilies* f = new RpcFamilies();
  return *f;
}

// "/pkg.Service/Method" -> {"pkg.Service", "Method"}.
std::pair<std::string, std::string> SplitMethod(const char* full) {
  std::string s = full == nullptr ? "" : full;
  if (!s.empty() && s[0] == '/') s.erase(0, 1);
  const size_t slash = s.find('/');
  if (slash == std::string::npos) return {"unknown", s.empty() ? "unknown" : s};
  return {s.substr(0, slash), s.substr(slash + 1)};
}

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RpcMetricsInterceptor(grpc::experimental::ServerRpcInfo* info) : start_(Clock::now()) {
    auto [service, method] = SplitMethod(info->method());
    labels_ = {{"service", service}, {"method", method}};
    in_flight_ = &Families().in_flight.Add(labels_);
    in_flight_->Increment();
  }

  ~RpcMetricsInterceptor() override {
    if (!status_recorded_) Record(grpc::StatusCode::CANCELLED);
    in_flight_->Decrement();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    status_recorded_ = true;
    const int c = static_cast<int>(code);
    auto labels = labels_;
    labels["code"] = (c >= 0 && c <= 16) ? kCodeNames[c] : "UNKNOWN";
    Families().requests.Add(labels).Increment();
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    Families().duration.Add(labels_, SecondsBuckets()).Observe(seconds);
  }

  Clock::time_point start_;
  std::map<std::string, std::string> labels_;
  prometheus::Gauge* in_flight_ = nullptr;
  bool status_recorded_ = false;
};

class RpcMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(info);
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptor() {
  Families();  // register the families up front so /metrics lists them from the start
  return std::make_unique<RpcMetricsFactory>();
}

}  // namespace ctx::obs
