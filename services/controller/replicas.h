// ReplicaSet: the endpoints of one backend service (inference, kvcache) with one stub each,
// and a local count of calls in flight per replica for least-loaded choice.
//
// Load = max(calls in flight from this controller, the replica's own count of requests in
// flight as last reported by it (ModelInfo.active_requests: every client's, so other
// controllers' load shows) while that report is fresh, default 2 s).
//
// Endpoints come from a comma list ("h1:p1,h2:p2"); an entry "dns:///name:port" is one
// replica whose channel gRPC resolves (and balances) itself. Stubs are injected (the
// StubInterface of the generated service) so that tests can point them at fakes.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/rpc/channel.h"

namespace ctx::controller {

// Splits "a:1, b:2" into endpoints (trimmed, empty items dropped).
inline std::vector<std::string> SplitEndpoints(const std::string& list) {
  std::vector<std::string> out;
  for (absl::string_view e : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(e));
  }
  return out;
}

template <class Stub>
class ReplicaSet {
 public:
  struct Replica {
    std::string endpoint;
    std::shared_ptr<Stub> stub;
  };

  ReplicaSet() = default;
  ReplicaSet(const ReplicaSet&) = delete;
  ReplicaSet& operator=(const ReplicaSet&) = delete;
  explicit ReplicaSet(std::vector<Replica> replicas)
      : replicas_(std::move(replicas)),
        in_flight_(replicas_.size(), 0),
        reported_(replicas_.size(), 0),
        reported_at_(replicas_.size()) {}

  // One channel (common/rpc/channel.h: limits + TLS flags) and stub per endpoint.
  template <class Service>
  static absl::StatusOr<std::unique_ptr<ReplicaSet>> Connect(const std::string& list) {
    std::vector<Replica> replicas;
    for (const std::string& e : SplitEndpoints(list)) {
      absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = rpc::MakeChannel(e);
      if (!ch.ok()) return ch.status();
      replicas.push_back({e, std::shared_ptr<Stub>(Service::NewStub(*ch))});
    }
    return std::make_unique<ReplicaSet>(std::move(replicas));
  }

  // A replica held for one call: releases its in-flight slot when destroyed.
  class Lease {
   public:
    Lease() = default;
    Lease(ReplicaSet* set, size_t index) : set_(set), index_(index) {}
    Lease(Lease&& o) noexcept { *this = std::move(o); }
    Lease& operator=(Lease&& o) noexcept {
      Release();
      set_ = std::exchange(o.set_, nullptr);
      index_ = o.index_;
      return *this;
    }
    ~Lease() { Release(); }
    explicit operator bool() const { return set_ != nullptr; }
    size_t index() const { return index_; }
    Stub* stub() const { return set_->replicas_[index_].stub.get(); }
    const std::string& endpoint() const { return set_->replicas_[index_].endpoint; }

   private:
    void Release() {
      if (set_ != nullptr) set_->Release(index_);
      set_ = nullptr;
    }
    ReplicaSet* set_ = nullptr;
    size_t index_ = 0;
  };

  // The replica with the fewest calls in flight (ties: lowest index after the last pick, so
  // idle replicas take turns), skipping `exclude`. An empty Lease when none is left.
  Lease Acquire(const std::set<size_t>& exclude = {}) {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    size_t best = replicas_.size();
    for (size_t k = 0; k < replicas_.size(); ++k) {
      const size_t i = (next_ + k) % replicas_.size();
      if (exclude.count(i) != 0) continue;
      if (best == replicas_.size() || LoadLocked(i, now) < LoadLocked(best, now)) best = i;
    }
    if (best == replicas_.size()) return Lease();
    ++in_flight_[best];
    next_ = best + 1;
    return Lease(this, best);
  }

  // Replica i says it has `active` requests in flight (all clients). Used until `ttl` passes.
  void ReportLoad(size_t i, int active) {
    std::lock_guard<std::mutex> lock(mu_);
    if (i >= reported_.size()) return;
    reported_[i] = active;
    reported_at_[i] = Clock::now();
  }
  void set_report_ttl(std::chrono::milliseconds ttl) {
    std::lock_guard<std::mutex> lock(mu_);
    report_ttl_ = ttl;
  }
  // The load Acquire compares.
  int load(size_t i) const {
    std::lock_guard<std::mutex> lock(mu_);
    return LoadLocked(i, Clock::now());
  }

  size_t size() const { return replicas_.size(); }
  bool empty() const { return replicas_.empty(); }
  const Replica& at(size_t i) const { return replicas_[i]; }
  int in_flight(size_t i) const {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_[i];
  }

 private:
  using Clock = std::chrono::steady_clock;

  int LoadLocked(size_t i, Clock::time_point now) const {
    const bool fresh =
        reported_at_[i] != Clock::time_point() && now - reported_at_[i] <= report_ttl_;
    return fresh ? std::max(in_flight_[i], reported_[i]) : in_flight_[i];
  }

  void Release(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_[i];
  }

  std::vector<Replica> replicas_;
  mutable std::mutex mu_;
  std::vector<int> in_flight_;
  std::vector<int> reported_;  // ModelInfo.active_requests
  std::vector<Clock::time_point> reported_at_;
  std::chrono::milliseconds report_ttl_{2000};
  size_t next_ = 0;
};

}  // namespace ctx::controller
