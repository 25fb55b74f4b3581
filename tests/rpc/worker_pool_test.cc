#include "common/rpc/worker_pool.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>

namespace ctx::rpc {

TEST_CASE("the worker pool runs every task and bounds its queue") {
  std::atomic<int> done{0};
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  {
    WorkerPool pool(1, 2);
    REQUIRE(pool.Submit([&] {
                  gate.wait();
                  ++done;
                })
                .ok());
    // Wait until the worker picked the blocking task, so the queue is empty.
    while (pool.busy() == 0) std::this_thread::yield();
    REQUIRE(pool.Submit([&] { ++done; }).ok());
    REQUIRE(pool.Submit([&] { ++done; }).ok());
    const absl::Status full = pool.Submit([&] { ++done; });
    CHECK(absl::IsResourceExhausted(full));
    CHECK(pool.queued() == 2);
    release.set_value();
  }  // the destructor drains the queue
  CHECK(done == 3);
}

}  // namespace ctx::rpc
