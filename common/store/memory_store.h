// In-process ChunkStore: LRU over chunk blobs, capped in payload bytes.
//
// Put and Get both count as a use. When a Put would exceed the cap, least recently used chunk
// blobs are evicted (Stats().evictions counts them). Manifests live in a separate map, are
// not counted against the cap and are never evicted (see chunk_store.h). capacity_bytes == 0
// means no cap. Everything is lost when the process exits.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/store/chunk_store.h"

namespace ctx::store {

class MemoryStore final : public ChunkStore {
 public:
  explicit MemoryStore(uint64_t capacity_bytes);

  absl::Status Put(const BlobKey& key, absl::string_view bytes) override;
  absl::StatusOr<std::string> Get(const BlobKey& key) override;
  absl::StatusOr<bool> Contains(const BlobKey& key) override;
  absl::Status Delete(const BlobKey& key) override;
  absl::Status PutMany(std::span<const BlobWrite> blobs) override;

  absl::Status PutManifest(absl::string_view tenant, absl::string_view context_id,
                           absl::string_view bytes) override;
  absl::StatusOr<std::string> GetManifest(absl::string_view tenant,
                                          absl::string_view context_id) override;
  absl::Status DeleteManifest(absl::string_view tenant, absl::string_view context_id) override;
  absl::StatusOr<std::vector<std::string>> ListManifests(absl::string_view tenant) override;

  StoreStats Stats() override;

 private:
  struct Entry {
    std::string key;  // BlobKey::ToString()
    std::string bytes;
  };
  using Lru = std::list<Entry>;  // front = most recently used

  absl::Status CheckSize(const BlobKey& key, size_t size) const;
  void EraseLocked(std::unordered_map<std::string, Lru::iterator>::iterator it);

  const uint64_t capacity_bytes_;
  std::mutex mu_;
  Lru lru_;
  std::unordered_map<std::string, Lru::iterator> index_;
  // tenant -> (context id -> manifest bytes)
  std::map<std::string, std::map<std::string, std::string>, std::less<>> manifests_;
  StoreStats stats_;
};

}  // namespace ctx::store
