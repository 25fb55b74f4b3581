#include "tests/store/conformance.h"

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "common/store/chunk_key.h"

namespace ctx::store::testing {

void RunConformanceSuite(const StoreFactory& factory) {
  std::unique_ptr<ChunkStore> store = factory();
  REQUIRE(store != nullptr);

  SECTION("put then get returns the exact binary bytes") {
    const std::string bytes = TestBytes(4096, 1);
    REQUIRE(store->Put(TestKey(1), bytes).ok());
    auto got = store->Get(TestKey(1));
    REQUIRE(got.ok());
    CHECK(*got == bytes);
    CHECK(store->Contains(TestKey(1)).value());
    // Empty blobs are legal and distinct from absence.
    REQUIRE(store->Put(TestKey(2), "").ok());
    auto empty = store->Get(TestKey(2));
    REQUIRE(empty.ok());
    CHECK(empty->empty());
    REQUIRE(store->Delete(TestKey(2)).ok());
    CHECK_FALSE(store->Contains(TestKey(2)).value());
    // 1 MiB blob.
    const std::string big = TestBytes(1 << 20, 7);
    REQUIRE(store->Put(TestKey(3), big).ok());
    CHECK(store->Get(TestKey(3)).value() == big);
  }

  SECTION("absent keys: NotFound, Contains false, Delete is idempotent") {
    auto got = store->Get(TestKey(9));
    CHECK(got.status().code() == absl::StatusCode::kNotFound);
    CHECK_FALSE(store->Contains(TestKey(9)).value());
    CHECK(store->Delete(TestKey(9)).ok());
  }

  SECTION("encoding and level are part of the key") {
    REQUIRE(store->Put(TestKey(5, 1, 0), "enc1-l0").ok());
    REQUIRE(store->Put(TestKey(5, 2, 0), "enc2-l0").ok());
    REQUIRE(store->Put(TestKey(5, 2, 3), "enc2-l3").ok());
    CHECK(store->Get(TestKey(5, 1, 0)).value() == "enc1-l0");
    CHECK(store->Get(TestKey(5, 2, 0)).value() == "enc2-l0");
    CHECK(store->Get(TestKey(5, 2, 3)).value() == "enc2-l3");
    CHECK(store->Get(TestKey(5, 1, 3)).status().code() == absl::StatusCode::kNotFound);
  }

  SECTION("overwrite replaces, delete removes, stats track bytes and items") {
    REQUIRE(store->Put(TestKey(1), std::string(100, 'a')).ok());
    REQUIRE(store->Put(TestKey(2), std::string(50, 'b')).ok());
    StoreStats s = store->Stats();
    CHECK(s.items == 2);
    CHECK(s.bytes == 150);
    REQUIRE(store->Put(TestKey(1), std::string(30, 'c')).ok());
    CHECK(store->Get(TestKey(1)).value() == std::string(30, 'c'));
    s = store->Stats();
    CHECK(s.items == 2);
    CHECK(s.bytes == 80);
    REQUIRE(store->Delete(TestKey(1)).ok());
    CHECK(store->Get(TestKey(1)).status().code() == absl::StatusCode::kNotFound);
    s = store->Stats();
    CHECK(s.items == 1);
    CHECK(s.bytes == 50);
    CHECK(s.evictions == 0);
  }

  SECTION("hits and misses are counted") {
    REQUIRE(store->Put(TestKey(1), "x").ok());
    const StoreStats before = store->Stats();
    (void)store->Get(TestKey(1));
    (void)store->Get(TestKey(1));
    (void)store->Get(TestKey(2));
    const StoreStats after = store->Stats();
    CHECK(after.hits - before.hits == 2);
    CHECK(after.misses - before.misses == 1);
  }

  SECTION("GetMany returns one result per key in order") {
    REQUIRE(store->Put(TestKey(1), "one").ok());
    REQUIRE(store->Put(TestKey(3), "three").ok());
    const std::vector<BlobKey> keys = {TestKey(3), TestKey(2), TestKey(1)};
    auto results = store->GetMany(keys);
    REQUIRE(results.size() == 3);
    CHECK(results[0].value() == "three");
    CHECK(results[1].status().code() == absl::StatusCode::kNotFound);
    CHECK(results[2].value() == "one");
    CHECK(store->GetMany({}).empty());
  }

  SECTION("PutMany stores every blob, overwrites count once") {
    std::vector<std::string> payloads;
    for (uint32_t i = 0; i < 12; ++i) payloads.push_back(TestBytes(1000 + i, i));
    std::vector<ChunkStore::BlobWrite> writes;
    for (uint32_t i = 0; i < 12; ++i) writes.push_back({TestKey(i, 2, i % 4), payloads[i]});
    REQUIRE(store->PutMany(writes).ok());
    REQUIRE(store->PutMany(writes).ok());  // idempotent
    for (uint32_t i = 0; i < 12; ++i)
      CHECK(store->Get(TestKey(i, 2, i % 4)).value() == payloads[i]);
    const StoreStats s = store->Stats();
    CHECK(s.items == 12);
    CHECK(s.bytes == 12 * 1000 + 66);
    CHECK(store->PutMany({}).ok());
  }

  SECTION("manifests: put, get, list sorted, overwrite, delete") {
    REQUIRE(store->PutManifest("acme", "ctx-b", "manifest b").ok());
    REQUIRE(store->PutManifest("acme", "ctx-a", TestBytes(300, 3)).ok());
    CHECK(store->GetManifest("acme", "ctx-a").value() == TestBytes(300, 3));
    CHECK(store->ListManifests("acme").value() == std::vector<std::string>{"ctx-a", "ctx-b"});
    CHECK(store->Stats().manifests == 2);
    REQUIRE(store->PutManifest("acme", "ctx-b", "manifest b v2").ok());
    CHECK(store->GetManifest("acme", "ctx-b").value() == "manifest b v2");
    REQUIRE(store->DeleteManifest("acme", "ctx-a").ok());
    CHECK(store->GetManifest("acme", "ctx-a").status().code() == absl::StatusCode::kNotFound);
    CHECK(store->ListManifests("acme").value() == std::vector<std::string>{"ctx-b"});
    CHECK(store->DeleteManifest("acme", "ctx-a").ok());  // idempotent
    CHECK(store->ListManifests("nobody").value().empty());
    CHECK(store->Stats().manifests == 1);
  }

  SECTION("manifests are scoped by tenant") {
    REQUIRE(store->PutManifest("tenant-a", "shared-id", "A's context").ok());
    REQUIRE(store->PutManifest("tenant-b", "other", "B's context").ok());
    // B guesses A's context id: not found, not listed, cannot delete it.
    CHECK(store->GetManifest("tenant-b", "shared-id").status().code() ==
          absl::StatusCode::kNotFound);
    CHECK(store->ListManifests("tenant-b").value() == std::vector<std::string>{"other"});
    REQUIRE(store->DeleteManifest("tenant-b", "shared-id").ok());
    CHECK(store->GetManifest("tenant-a", "shared-id").value() == "A's context");
    // Prefix-alike tenant names do not leak either.
    CHECK(store->ListManifests("tenant").value().empty());
    CHECK(store->ListManifests("tenant-a").value() == std::vector<std::string>{"shared-id"});
  }

  SECTION("bad tenant / context names are InvalidArgument everywhere") {
    for (const char* bad : {"", "../etc", "a/b", ".hidden", "sp ace", "x\ny"}) {
      INFO("name: " << bad);
      CHECK(store->PutManifest(bad, "c", "m").code() == absl::StatusCode::kInvalidArgument);
      CHECK(store->PutManifest("t", bad, "m").code() == absl::StatusCode::kInvalidArgument);
      CHECK(store->GetManifest("t", bad).status().code() == absl::StatusCode::kInvalidArgument);
      CHECK(store->ListManifests(bad).status().code() == absl::StatusCode::kInvalidArgument);
      CHECK(store->DeleteManifest(bad, "c").code() == absl::StatusCode::kInvalidArgument);
    }
    CHECK(store->PutManifest(std::string(129, 'a'), "c", "m").code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(store->PutManifest(std::string(128, 'a'), "c", "m").ok());
  }

  SECTION("concurrent writers and readers see complete blobs") {
    constexpr int kThreads = 4, kPerThread = 25;
    std::vector<std::thread> threads;
    std::vector<int> failures(kThreads, 0);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const uint32_t n = static_cast<uint32_t>(t * 1000 + i);
          const std::string bytes = TestBytes(512 + static_cast<size_t>(i), n);
          if (!store->Put(TestKey(n), bytes).ok()) ++failures[t];
          auto got = store->Get(TestKey(n));
          if (!got.ok() || *got != bytes) ++failures[t];
          // Everyone also hammers one shared key; any read must be one whole version.
          (void)store->Put(TestKey(777), std::string(64, static_cast<char>('a' + t)));
          auto shared = store->Get(TestKey(777));
          if (!shared.ok() || shared->size() != 64 || *shared != std::string(64, (*shared)[0]))
            ++failures[t];
        }
      });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) CHECK(failures[t] == 0);
    CHECK(store->Stats().items == kThreads * kPerThread + 1);
  }
}

}  // namespace ctx::store::testing
