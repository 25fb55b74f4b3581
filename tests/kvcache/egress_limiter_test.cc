#include "services/kvcache/egress_limiter.h"

#include <catch2/catch.hpp>
#include <chrono>

namespace ctx::kvcache {

TEST_CASE("EgressLimiter paces bytes at the rate after the first burst") {
  using Clock = std::chrono::steady_clock;
  EgressLimiter unlimited(0, 0);
  CHECK_FALSE(unlimited.limited());
  CHECK(unlimited.PartBytes(1 << 20) == (1u << 20));

  const double rate = 2e6, burst = 64 * 1024;
  EgressLimiter limiter(rate, burst);
  CHECK(limiter.PartBytes(1 << 20) == 100000);  // ~50 ms of traffic
  const Clock::time_point t0 = Clock::now();
  double sent = 0;
  for (int i = 0; i < 10; ++i) {
    limiter.Acquire(100000);
    sent += 100000;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  // Lower bound only: the first burst is free, everything else waits for tokens.
  CHECK(secs >= (sent - burst - 100000) / rate);
}

}  // namespace ctx::kvcache
