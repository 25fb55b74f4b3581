// store_bench: throughput of the three ChunkStore backends and of chunk hashing (not a test).
// Usage: ./build/tests/store/store_bench [blob_kib=256] [blobs=100]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/store/chunk_key.h"
#include "common/store/disk_store.h"
#include "common/store/memory_store.h"
#include "common/store/redis_store.h"
#include "tests/store/redis_server.h"
#include "tests/store/test_data.h"

using namespace ctx::store;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void Bench(const char* name, ChunkStore& store, size_t blob_bytes, int blobs) {
  std::vector<BlobKey> keys;
  for (int i = 0; i < blobs; ++i) keys.push_back(testing::TestKey(static_cast<uint32_t>(i)));
  const std::string payload = testing::TestBytes(blob_bytes, 1);
  const double mib = static_cast<double>(blob_bytes) * blobs / (1 << 20);
  auto t0 = Clock::now();
  for (const BlobKey& k : keys) {
    if (!store.Put(k, payload).ok()) std::printf("%s: put failed\n", name);
  }
  const double put_s = Seconds(t0);
  // Results are kept alive in both read loops so that both pay for the same fresh memory.
  std::vector<absl::StatusOr<std::string>> one_by_one;
  one_by_one.reserve(keys.size());
  t0 = Clock::now();
  for (const BlobKey& k : keys) one_by_one.push_back(store.Get(k));
  const double get_s = Seconds(t0);
  for (const auto& r : one_by_one) {
    if (!r.ok()) std::printf("%s: get failed\n", name);
  }
  one_by_one.clear();
  t0 = Clock::now();
  auto many = store.GetMany(keys);
  const double many_s = Seconds(t0);
  std::vector<ChunkStore::BlobWrite> writes;
  for (const BlobKey& k : keys)
    writes.push_back({BlobKey{k.hash, k.encoding, k.level + 1}, payload});
  t0 = Clock::now();
  if (!store.PutMany(writes).ok()) std::printf("%s: put_many failed\n", name);
  const double put_many_s = Seconds(t0);
  std::printf(
      "%-8s blob %7zu B x %4d: put %8.1f MiB/s (%7.0f ops/s)  get %8.1f MiB/s (%7.0f ops/s)"
      "  get_many %8.1f MiB/s  put_many %8.1f MiB/s\n",
      name, blob_bytes, blobs, mib / put_s, blobs / put_s, mib / get_s, blobs / get_s, mib / many_s,
      mib / put_many_s);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t blob_kib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 256;
  const int blobs = argc > 2 ? std::atoi(argv[2]) : 100;

  // Chunk hashing: 256-token chunks over a 64k-token context.
  std::vector<uint32_t> tokens(65536);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(i * 2654435761u);
  auto t0 = Clock::now();
  auto hashes = ComputeChunkHashes(tokens, 256, ModelFingerprint{}, "bench");
  const double hs = Seconds(t0);
  std::printf("chunk hashes: %zu chunks of 256 tokens in %.3f ms (%.0f Mtokens/s)\n",
              hashes->size(), hs * 1e3, tokens.size() / hs / 1e6);

  for (size_t bytes : {size_t{4096}, blob_kib << 10}) {
    const int n = bytes == 4096 ? 1000 : blobs;
    MemoryStore mem(0);
    Bench("memory", mem, bytes, n);
    const auto dir = std::filesystem::temp_directory_path() / "ctx_store_bench";
    std::filesystem::remove_all(dir);
    {
      auto disk = DiskStore::Open(dir);
      if (disk.ok()) Bench("disk", **disk, bytes, n);
    }
    std::filesystem::remove_all(dir);
    if (!testing::FindRedisServer().empty()) {
      testing::RedisServer server(testing::PickFreePort());
      if (server.Start()) {
        RedisStore::Options o;
        o.port = server.port();
        auto redis = RedisStore::Connect(o);
        if (redis.ok()) Bench("redis", **redis, bytes, n);
      }
    }
  }
  return 0;
}
