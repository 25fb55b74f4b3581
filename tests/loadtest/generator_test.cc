// The load generator's core against a fake client: Poisson arrival statistics, the
// closed-loop concurrency bound, count/time bounds, determinism of the workload picks.
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>

#include "loadtest/arrivals.h"
#include "loadtest/load_generator.h"
#include "tests/loadtest/fake_client.h"

namespace lt = ctx::loadtest;
using lt::testing::FakeClient;
using namespace std::chrono_literals;

namespace {

std::vector<lt::WorkloadContext> Contexts() {
  return {{"id-a", "a.txt"}, {"id-b", "b.txt"}, {"id-c", "c.txt"}};
}
std::vector<std::string> Questions() { return {"q0", "q1"}; }

}  // namespace

TEST_CASE("Poisson arrivals: exponential gaps with mean 1/rate, seeded", "[loadtest]") {
  const double rate = 50;
  const int n = 40000;
  lt::PoissonArrivals a(rate, 42);
  std::vector<double> gaps(n);
  for (double& g : gaps) g = a.NextGap();
  const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / n;
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  var /= n - 1;
  // Mean 1/rate = 0.02 s; standard error 0.02/sqrt(40000) = 1e-4, so 2 % is > 4 sigma.
  CHECK(mean == Approx(1 / rate).epsilon(0.02));
  // Exponential: standard deviation equals the mean (coefficient of variation 1).
  CHECK(std::sqrt(var) / mean == Approx(1.0).epsilon(0.03));
  // Memorylessness shows as P(gap < mean * ln 2) = 1/2 (the median of an exponential).
  const double below =
      std::count_if(gaps.begin(), gaps.end(), [&](double g) { return g < std::log(2.0) / rate; });
  CHECK(below / n == Approx(0.5).margin(0.01));
  // Arrivals per 1-second window are Poisson(50): mean 50, variance 50.
  std::vector<int> per_window;
  double t = 0;
  int count = 0, window = 0;
  for (double g : gaps) {
    t += g;
    while (t >= window + 1) {
      per_window.push_back(count);
      count = 0;
      ++window;
    }
    ++count;
  }
  const double wm = std::accumulate(per_window.begin(), per_window.end(), 0.0) / per_window.size();
  double wv = 0;
  for (int c : per_window) wv += (c - wm) * (c - wm);
  wv /= per_window.size() - 1;
  CHECK(wm == Approx(rate).epsilon(0.03));
  CHECK(wv / wm == Approx(1.0).margin(0.25));  // index of dispersion 1 (about 800 windows)

  // Same seed, same schedule; another seed, another one.
  lt::PoissonArrivals b(rate, 42), c(rate, 43);
  lt::PoissonArrivals a2(rate, 42);
  bool all_same = true, any_diff = false;
  for (int i = 0; i < 100; ++i) {
    const double x = a2.NextGap();
    all_same = all_same && x == b.NextGap();
    any_diff = any_diff || x != c.NextGap();
  }
  CHECK(all_same);
  CHECK(any_diff);
}

TEST_CASE("closed loop never has more than N queries in flight and reaches N", "[loadtest]") {
  for (int n : {1, 3, 4}) {
    FakeClient fake(15ms);
    lt::LoadOptions o;
    o.mode = lt::LoadOptions::Mode::kClosed;
    o.concurrency = n;
    o.max_queries = 24;
    o.duration_seconds = 0;
    lt::RunResult r = lt::RunLoad(fake, Contexts(), Questions(), o);
    INFO("concurrency " << n);
    CHECK(fake.max_in_flight() == n);
    CHECK(r.max_in_flight == n);
    REQUIRE(r.records.size() == 24);
    for (size_t i = 0; i < r.records.size(); ++i) CHECK(r.records[i].index == i);
  }
}

TEST_CASE("open loop sends exactly --queries, one record each, in send order", "[loadtest]") {
  FakeClient fake(2ms);
  lt::LoadOptions o;
  o.mode = lt::LoadOptions::Mode::kOpen;
  o.rate_qps = 2000;
  o.max_queries = 150;
  o.duration_seconds = 30;
  o.seed = 7;
  lt::RunResult r = lt::RunLoad(fake, Contexts(), Questions(), o);
  REQUIRE(r.records.size() == 150);
  for (size_t i = 0; i < r.records.size(); ++i) {
    CHECK(r.records[i].index == i);
    if (i > 0) CHECK(r.records[i].start_seconds >= r.records[i - 1].start_seconds);
    // The fake's answer arrived unchanged, and the generator filled in the workload.
    CHECK(r.records[i].ttft_seconds == fake.Expected(i).ttft_seconds);
    CHECK(!r.records[i].context_name.empty());
  }
  // Open loop does not wait for completions: with 2000 q/s and 2 ms per query, several
  // overlap (a closed loop with concurrency 1 would never exceed 1).
  CHECK(r.max_in_flight >= 1);
}

TEST_CASE("the workload picks are a function of the seed", "[loadtest]") {
  auto picks = [](uint64_t seed) {
    FakeClient fake(0ms);
    lt::LoadOptions o;
    o.concurrency = 1;
    o.max_queries = 40;
    o.seed = seed;
    lt::RunLoad(fake, Contexts(), Questions(), o);
    std::vector<std::string> out;
    for (const auto& s : fake.specs()) out.push_back(s.context_id + s.question);
    return out;
  };
  const auto a = picks(5);
  CHECK(a == picks(5));
  CHECK(a != picks(6));
  // Every context and question gets used over 40 picks.
  for (const char* id : {"id-a", "id-b", "id-c"}) {
    CHECK(std::any_of(a.begin(), a.end(), [&](const std::string& s) { return s.find(id) == 0; }));
  }
}

TEST_CASE("the duration bound stops sending and every sent query completes", "[loadtest]") {
  FakeClient fake(5ms);
  lt::LoadOptions o;
  o.concurrency = 2;
  o.max_queries = 0;
  o.duration_seconds = 0.15;
  int progress_calls = 0;
  o.progress = [&](const lt::Progress&) { ++progress_calls; };
  o.progress_interval_seconds = 0.05;
  lt::RunResult r = lt::RunLoad(fake, Contexts(), Questions(), o);
  CHECK(!r.records.empty());
  CHECK(r.records.size() == fake.specs().size());
  CHECK(progress_calls >= 1);  // at least the final call
}

TEST_CASE("an unbounded run or an empty workload is refused", "[loadtest]") {
  FakeClient fake(0ms);
  lt::LoadOptions o;
  o.max_queries = 0;
  o.duration_seconds = 0;
  CHECK_THROWS_AS(lt::RunLoad(fake, Contexts(), Questions(), o), std::invalid_argument);
  o.max_queries = 1;
  CHECK_THROWS_AS(lt::RunLoad(fake, {}, Questions(), o), std::invalid_argument);
}
