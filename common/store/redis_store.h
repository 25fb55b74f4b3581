// ChunkStore on Redis (hiredis 0.14, plain TCP), shared by many kvcache replicas.
//
// Keys (all under Options::prefix, so several deployments can share one Redis):
//   <prefix>:c:<blob key>   string: the chunk blob bytes
//   <prefix>:m:<tenant>     hash: context id -> manifest bytes (one hash per tenant, so
//                           ListManifests is one HKEYS and never sees another tenant)
//   <prefix>:stats          hash: bytes, items, manifests (kept exact by Lua scripts on write)
// All commands use the argv form of hiredis (binary safe, like %b).
//
// Connection: one connection guarded by a mutex, connect and per-command timeouts. When a
// command fails on the connection (Redis restarted, network blip), the store reconnects and
// retries it once; if Redis is still down the call returns UNAVAILABLE and a later call tries
// to connect again. GetMany and PutMany pipeline their commands in one round trip.
//
// Capacity and eviction are Redis's job (maxmemory + maxmemory-policy, as in LMCache):
// Stats().evictions reports Redis's evicted_keys. Keys evicted by Redis make the byte/item
// counters in <prefix>:stats drift upward. The only limit enforced here is max_blob_bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/store/chunk_store.h"

struct redisContext;
struct redisReply;

namespace ctx::store {

class RedisStore final : public ChunkStore {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string prefix = "ctx";
    int connect_timeout_ms = 1000;
    int command_timeout_ms = 5000;
    uint64_t max_blob_bytes = 512ull << 20;  // Redis' proto-max-bulk-len default
  };

  // Connects once to check the server is there (UNAVAILABLE with the address if not).
  static absl::StatusOr<std::unique_ptr<RedisStore>> Connect(Options options);
  ~RedisStore() override;

  absl::Status Put(const BlobKey& key, absl::string_view bytes) override;
  absl::StatusOr<std::string> Get(const BlobKey& key) override;
  absl::StatusOr<bool> Contains(const BlobKey& key) override;
  absl::Status Delete(const BlobKey& key) override;
  std::vector<absl::StatusOr<std::string>> GetMany(std::span<const BlobKey> keys) override;
  absl::Status PutMany(std::span<const BlobWrite> blobs) override;

  absl::Status PutManifest(absl::string_view tenant, absl::string_view context_id,
                           absl::string_view bytes) override;
  absl::StatusOr<std::string> GetManifest(absl::string_view tenant,
                                          absl::string_view context_id) override;
  absl::Status DeleteManifest(absl::string_view tenant, absl::string_view context_id) override;
  absl::StatusOr<std::vector<std::string>> ListManifests(absl::string_view tenant) override;

  StoreStats Stats() override;

  // Number of successful (re)connections so far (1 after Connect).
  uint64_t connects() const;

 private:
  explicit RedisStore(Options options);
  struct ReplyDeleter {
    void operator()(redisReply* r) const;
  };
  using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

  absl::Status ConnectLocked();
  void DropConnectionLocked();
  // Runs one command; reconnects and retries once on a connection error. Error replies
  // become INTERNAL with Redis's message.
  absl::StatusOr<Reply> Command(const std::vector<std::string>& argv);
  absl::StatusOr<Reply> CommandLocked(const std::vector<std::string>& argv);
  absl::Status CheckSize(const BlobKey& key, size_t size) const;
  std::string ChunkKey(const BlobKey& key) const;
  std::string TenantKey(absl::string_view tenant) const;
  std::string StatsKey() const;

  const Options options_;
  mutable std::mutex mu_;
  redisContext* ctx_ = nullptr;
  uint64_t connects_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace ctx::store
