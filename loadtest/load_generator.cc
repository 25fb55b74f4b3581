#include "loadtest/load_generator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include "loadtest/arrivals.h"

namespace ctx::loadtest {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Shared state between the sending loop, the completion callbacks and the progress thread.
struct RunState {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<QueryRecord> records;
  uint64_t sent = 0;
  uint64_t done = 0;
  uint64_t ok = 0;
  int in_flight = 0;
  int max_in_flight = 0;
  double last_ttft = -1;
  Clock::time_point last_done;
};

}  // namespace

RunResult RunLoad(QueryClient& client, const std::vector<WorkloadContext>& contexts,
                  const std::vector<std::string>& questions, const LoadOptions& options) {
  if (contexts.empty() || questions.empty()) {
    throw std::invalid_argument("RunLoad needs at least one context and one question");
  }
  if (options.max_queries == 0 && options.duration_seconds <= 0) {
    throw std::invalid_argument("RunLoad needs a query count or a duration bound");
  }
  RunState st;
  const Clock::time_point t0 = Clock::now();
  st.last_done = t0;
  // Separate streams: the arrival schedule must not depend on the workload picks.
  std::mt19937_64 pick_rng(options.seed ^ 0x9E3779B97F4A7C15ULL);
  PoissonArrivals arrivals(options.mode == LoadOptions::Mode::kOpen ? options.rate_qps : 1.0,
                           options.seed);

  std::atomic<bool> finished{false};
  std::thread progress_thread;
  if (options.progress) {
    progress_thread = std::thread([&] {
      std::unique_lock lock(st.mu);
      while (!finished.load()) {
        st.cv.wait_for(lock, std::chrono::duration<double>(options.progress_interval_seconds),
                       [&] { return finished.load(); });
        if (finished.load()) break;
        Progress p{SecondsSince(t0), st.sent, st.done, st.ok, static_cast<uint64_t>(st.in_flight),
                   st.last_ttft};
        lock.unlock();
        options.progress(p);
        lock.lock();
      }
    });
  }

  auto bound_reached = [&](uint64_t sent) {
    if (options.max_queries > 0 && sent >= options.max_queries) return true;
    return options.duration_seconds > 0 && SecondsSince(t0) >= options.duration_seconds;
  };
  auto send = [&](std::unique_lock<std::mutex>& lock) {
    QuerySpec spec;
    spec.index = st.sent++;
    const WorkloadContext& c = contexts[pick_rng() % contexts.size()];
    spec.context_id = c.id;
    spec.context_name = c.name;
    spec.question_index = static_cast<int>(pick_rng() % questions.size());
    spec.question = questions[static_cast<size_t>(spec.question_index)];
    ++st.in_flight;
    st.max_in_flight = std::max(st.max_in_flight, st.in_flight);
    const double start = SecondsSince(t0);
    lock.unlock();
    client.StartQuery(spec, [&st, spec, start](QueryRecord r) {
      r.index = spec.index;
      r.context_name = spec.context_name;
      r.question_index = spec.question_index;
      r.start_seconds = start;
      std::lock_guard g(st.mu);
      if (r.ok()) {
        ++st.ok;
        st.last_ttft = r.ttft_seconds;
      }
      st.records.push_back(std::move(r));
      ++st.done;
      --st.in_flight;
      st.last_done = Clock::now();
      st.cv.notify_all();
    });
    lock.lock();
  };

  {
    std::unique_lock lock(st.mu);
    if (options.mode == LoadOptions::Mode::kOpen) {
      // Absolute schedule: a slow StartQuery does not shift later arrivals.
      double next = arrivals.NextGap();
      while (!bound_reached(st.sent)) {
        const auto due =
            t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(next));
        if (options.duration_seconds > 0 && next >= options.duration_seconds) break;
        st.cv.wait_until(lock, due, [&] { return Clock::now() >= due; });
        if (Clock::now() < due) continue;
        send(lock);
        next += arrivals.NextGap();
      }
    } else {
      const int n = std::max(1, options.concurrency);
      while (true) {
        st.cv.wait(lock, [&] { return st.in_flight < n; });
        if (bound_reached(st.sent)) break;
        send(lock);
      }
    }
    st.cv.wait(lock, [&] { return st.in_flight == 0; });
  }
  finished = true;
  st.cv.notify_all();
  if (progress_thread.joinable()) progress_thread.join();

  RunResult result;
  {
    std::lock_guard g(st.mu);
    result.records = std::move(st.records);
    result.duration_seconds = std::chrono::duration<double>(st.last_done - t0).count();
    result.max_in_flight = st.max_in_flight;
    if (options.progress) {
      options.progress(Progress{SecondsSince(t0), st.sent, st.done, st.ok, 0, st.last_ttft});
    }
  }
  std::sort(result.records.begin(), result.records.end(),
            [](const QueryRecord& a, const QueryRecord& b) { return a.index < b.index; });
  return result;
}

}  // namespace ctx::loadtest
