// A QueryClient for the generator's tests: each query completes on its own thread after a
// delay; TTFT, status and decision are functions of the query's index, so a test knows
// what the summary must say. Records the largest number of queries it saw at once.
#pragma once

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "loadtest/load_generator.h"

namespace ctx::loadtest::testing {

class FakeClient : public QueryClient {
 public:
  explicit FakeClient(std::chrono::milliseconds delay, int fail_every = 0)
      : delay_(delay), fail_every_(fail_every) {}
  ~FakeClient() override {
    for (auto& t : threads_) t.join();
  }

  void StartQuery(const QuerySpec& spec, std::function<void(QueryRecord)> done) override {
    std::lock_guard g(mu_);
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    specs_.push_back(spec);
    threads_.emplace_back([this, spec, done = std::move(done)] {
      std::this_thread::sleep_for(delay_);
      QueryRecord r = Expected(spec.index);
      {
        std::lock_guard g2(mu_);
        --in_flight_;
      }
      done(std::move(r));
    });
  }

  // What query `index` answers: TTFT (index % 10 + 1) / 10 s; every `fail_every`-th query
  // (index % fail_every == fail_every - 1) fails UNAVAILABLE (14); forms cycle text, ctext,
  // kv (levels {0, 1, 2, -1}).
  QueryRecord Expected(uint64_t index) const {
    QueryRecord r;
    if (fail_every_ > 0 && index % fail_every_ == static_cast<uint64_t>(fail_every_ - 1)) {
      r.status_code = 14;
      r.status_message = "fake failure";
      return r;
    }
    r.ttft_seconds = static_cast<double>(index % 10 + 1) / 10.0;
    r.total_seconds = r.ttft_seconds + 0.5;
    switch (index % 3) {
      case 0:
        r.plan_form = "text";
        break;
      case 1:
        r.plan_form = "ctext";
        break;
      default:
        r.plan_form = "kv";
        r.plan_levels = {0, 1, 2, -1};
        r.final_levels = r.plan_levels;
    }
    return r;
  }

  int max_in_flight() {
    std::lock_guard g(mu_);
    return max_in_flight_;
  }
  std::vector<QuerySpec> specs() {
    std::lock_guard g(mu_);
    return specs_;
  }

 private:
  std::chrono::milliseconds delay_;
  int fail_every_;
  std::mutex mu_;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
  std::vector<QuerySpec> specs_;
  std::vector<std::thread> threads_;
};

}  // namespace ctx::loadtest::testing
