// The cross-request batcher with a fake forward (p = id / 1000 at each position), so batch
// composition is observable and deterministic.
#include "services/compressor/batching_scorer.h"

#include <catch2/catch.hpp>
#include <future>
#include <mutex>
#include <thread>

namespace ctx::compressor {
namespace {

using namespace std::chrono_literals;
using Seqs = std::vector<std::vector<int32_t>>;

// Records batch sizes; optionally holds each forward until released.
struct FakeForward {
  std::mutex mu;
  std::vector<size_t> batch_sizes;
  bool hold = false;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> started{0};

  ForwardFn Fn() {
    return [this](std::span<const std::vector<int32_t>> seqs) -> absl::StatusOr<Probs> {
      ++started;
      if (hold) released.wait();
      std::lock_guard lock(mu);
      batch_sizes.push_back(seqs.size());
      Probs out;
      for (const auto& s : seqs) {
        std::vector<float> row;
        for (int32_t id : s) row.push_back(static_cast<float>(id) / 1000.0f);
        out.push_back(row);
      }
      return out;
    };
  }
};

void WaitUntil(const std::function<bool()>& pred) {
  for (int i = 0; i < 5000 && !pred(); ++i) std::this_thread::sleep_for(1ms);
  REQUIRE(pred());
}

std::vector<float> Expected(const std::vector<int32_t>& s) {
  std::vector<float> row;
  for (int32_t id : s) row.push_back(static_cast<float>(id) / 1000.0f);
  return row;
}

}  // namespace

TEST_CASE("chunks that arrive while a forward runs go into one next forward, results scattered",
          "[compressor][batching]") {
  FakeForward fake;
  fake.hold = true;
  BatchingOptions o;
  o.batch_window = 0us;
  BatchingScorer b(fake.Fn(), o);

  const Seqs a = {{0, 11, 2}};
  const Seqs r1 = {{0, 21, 22, 2}, {0, 23, 2}};
  const Seqs r2 = {{0, 31, 2}};
  auto fa = std::async(std::launch::async, [&] { return b.Score(a); });
  WaitUntil([&] { return fake.started.load() == 1; });  // forward 1 (a) is running
  auto f1 = std::async(std::launch::async, [&] { return b.Score(r1); });
  auto f2 = std::async(std::launch::async, [&] { return b.Score(r2); });
  WaitUntil([&] { return b.pending_chunks() == 3; });
  fake.release.set_value();

  auto pa = fa.get();
  auto p1 = f1.get();
  auto p2 = f2.get();
  REQUIRE(pa.ok());
  REQUIRE(p1.ok());
  REQUIRE(p2.ok());
  CHECK(*pa == Probs{Expected(a[0])});
  CHECK(*p1 == Probs{Expected(r1[0]), Expected(r1[1])});
  CHECK(*p2 == Probs{Expected(r2[0])});
  CHECK(fake.batch_sizes == std::vector<size_t>{1, 3});  // two requests, one forward
  CHECK(b.forwards() == 2);
  CHECK(b.chunks_scored() == 4);
  CHECK(b.max_chunks_in_one_forward() == 3);
}

TEST_CASE("a request with more chunks than max_batch_chunks is split, order kept",
          "[compressor][batching]") {
  FakeForward fake;
  BatchingOptions o;
  o.max_batch_chunks = 2;
  o.batch_window = 0us;
  BatchingScorer b(fake.Fn(), o);
  Seqs seqs;
  for (int32_t i = 0; i < 5; ++i) seqs.push_back({0, 100 + i, 2});
  auto p = b.Score(seqs);
  REQUIRE(p.ok());
  REQUIRE(p->size() == 5);
  for (size_t i = 0; i < 5; ++i) CHECK((*p)[i] == Expected(seqs[i]));
  CHECK(fake.batch_sizes == std::vector<size_t>{2, 2, 1});
  CHECK(b.Score({}).value().empty());
}

TEST_CASE("a forward error reaches every request of that batch", "[compressor][batching]") {
  BatchingScorer b(
      [](std::span<const std::vector<int32_t>>) -> absl::StatusOr<Probs> {
        return absl::InvalidArgumentError("id 99999 out of range");
      },
      BatchingOptions{});
  const Seqs s = {{0, 5, 2}};
  auto p = b.Score(s);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(p.status().message() == "id 99999 out of range");
}

TEST_CASE("a cancelled or expired request stops waiting and leaves the queue",
          "[compressor][batching]") {
  FakeForward fake;
  fake.hold = true;
  BatchingOptions o;
  o.batch_window = 0us;
  BatchingScorer b(fake.Fn(), o);
  const Seqs a = {{0, 1, 2}};
  auto fa = std::async(std::launch::async, [&] { return b.Score(a); });
  WaitUntil([&] { return fake.started.load() == 1; });

  std::atomic<bool> cancel{false};
  CallControl c;
  c.cancelled = [&] { return cancel.load(); };
  const Seqs r = {{0, 7, 2}, {0, 8, 2}};
  auto fr = std::async(std::launch::async, [&] { return b.Score(r, c); });
  WaitUntil([&] { return b.pending_chunks() == 2; });
  cancel = true;
  auto pr = fr.get();
  REQUIRE_FALSE(pr.ok());
  CHECK(pr.status().code() == absl::StatusCode::kCancelled);
  CHECK(b.pending_chunks() == 0);

  CallControl late;
  late.deadline = std::chrono::system_clock::now() - 1s;
  auto pl = b.Score(r, late);
  REQUIRE_FALSE(pl.ok());
  CHECK(pl.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(b.pending_chunks() == 0);

  fake.release.set_value();
  REQUIRE(fa.get().ok());
  CHECK(fake.batch_sizes == std::vector<size_t>{1});  // the abandoned chunks never ran
}

}  // namespace ctx::compressor
