// MemoryStore: conformance plus LRU order and byte cap.
#include "common/store/memory_store.h"

#include <catch2/catch.hpp>

#include "tests/store/conformance.h"

using namespace ctx::store;
using ctx::store::testing::TestKey;

TEST_CASE("memory store: conformance", "[store][memory]") {
  ctx::store::testing::RunConformanceSuite([] { return std::make_unique<MemoryStore>(0); });
}

TEST_CASE("memory store: conformance with a roomy cap", "[store][memory]") {
  ctx::store::testing::RunConformanceSuite(
      [] { return std::make_unique<MemoryStore>(64ull << 20); });
}

TEST_CASE("memory store: evicts least recently used chunks to respect the byte cap",
          "[store][memory]") {
  MemoryStore store(250);
  REQUIRE(store.Put(TestKey(1), std::string(100, 'a')).ok());
  REQUIRE(store.Put(TestKey(2), std::string(100, 'b')).ok());
  REQUIRE(store.Get(TestKey(1)).ok());                                // 1 is now more recent than 2
  REQUIRE(store.PutManifest("t", "c", std::string(1000, 'm')).ok());  // not counted, not evicted
  REQUIRE(store.Put(TestKey(3), std::string(100, 'c')).ok());         // must evict 2
  CHECK(store.Contains(TestKey(1)).value());
  CHECK_FALSE(store.Contains(TestKey(2)).value());
  CHECK(store.Contains(TestKey(3)).value());
  StoreStats s = store.Stats();
  CHECK(s.bytes == 200);
  CHECK(s.items == 2);
  CHECK(s.evictions == 1);
  CHECK(s.capacity_bytes == 250);
  // A 250-byte blob needs everything else out: evicts 1 and 3 (both).
  REQUIRE(store.Put(TestKey(4), std::string(250, 'd')).ok());
  s = store.Stats();
  CHECK(s.bytes == 250);
  CHECK(s.items == 1);
  CHECK(s.evictions == 3);
  CHECK(store.GetManifest("t", "c").value().size() == 1000);
}

TEST_CASE("memory store: overwrite counts as a use and does not double count", "[store][memory]") {
  MemoryStore store(300);
  REQUIRE(store.Put(TestKey(1), std::string(100, 'a')).ok());
  REQUIRE(store.Put(TestKey(2), std::string(100, 'b')).ok());
  REQUIRE(store.Put(TestKey(1), std::string(100, 'A')).ok());  // 1 most recent again
  REQUIRE(store.Put(TestKey(3), std::string(100, 'c')).ok());  // fits exactly: no eviction
  CHECK(store.Stats().evictions == 0);
  REQUIRE(store.Put(TestKey(4), std::string(1, 'd')).ok());  // evicts LRU = 2
  CHECK_FALSE(store.Contains(TestKey(2)).value());
  CHECK(store.Get(TestKey(1)).value() == std::string(100, 'A'));
}

TEST_CASE("memory store: a blob larger than the capacity is RESOURCE_EXHAUSTED",
          "[store][memory]") {
  MemoryStore store(100);
  REQUIRE(store.Put(TestKey(1), std::string(60, 'a')).ok());
  const absl::Status s = store.Put(TestKey(2), std::string(101, 'x'));
  CHECK(s.code() == absl::StatusCode::kResourceExhausted);
  CHECK(s.message().find("capacity of 100 bytes") != absl::string_view::npos);
  CHECK(store.Contains(TestKey(1)).value());  // nothing was evicted for a refused blob
  CHECK(store.Stats().evictions == 0);
  // A batch with one oversized blob is refused whole, before anything is written.
  const std::string small(10, 's'), big(101, 'b');
  const std::vector<ChunkStore::BlobWrite> batch = {{TestKey(3), small}, {TestKey(4), big}};
  CHECK(store.PutMany(batch).code() == absl::StatusCode::kResourceExhausted);
  CHECK_FALSE(store.Contains(TestKey(3)).value());
}
