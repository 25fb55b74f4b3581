// ChunkStore on a local directory; crash-safe and restart-safe.
//
// Layout under `root`:
//   chunks/<h0h1>/<h2h3>/<blob key>.blob     two-level fan-out by the first two hash bytes
//   manifests/<tenant>/<context id>.manifest
//   .tmp.<pid>.<n> files in the target's own directory while a write is in flight
//
// Every file (blob or manifest) is:
//   offset 0  8 bytes  ASCII "CTXBLOB1"
//          8  8 bytes  payload length, u64 little-endian
//         16  8 bytes  XXH3_64 (seedless) of (name || payload), u64 little-endian, where name is
//                      the blob key string or "<tenant>/<context id>" (a file copied to the
//                      wrong name fails the check too)
//         24  ...      payload
//
// Write protocol: write the temp file, fsync it, rename() over the final name, fsync the
// directory. After kill -9 a name is either absent or holds a complete, checksummed file;
// leftover temp files are deleted when the store is opened and are never listed or served.
// Reads verify length and checksum: a torn or corrupted chunk is reported as DATA_LOSS, never
// served, and removed (so a later Get is NotFound and the chunk gets re-ingested); a corrupted
// manifest is reported as DATA_LOSS and left in place for inspection.
//
// Capacity (optional, payload bytes, 0 = none): LRU over chunk blobs, in-memory access order,
// seeded from file mtimes when the store is opened. Manifests are never evicted.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "common/store/chunk_store.h"

namespace ctx::store {

class DiskStore final : public ChunkStore {
 public:
  // Creates `root` if needed, deletes leftover temp files, rebuilds the index from the files.
  static absl::StatusOr<std::unique_ptr<DiskStore>> Open(const std::filesystem::path& root,
                                                         uint64_t capacity_bytes = 0);

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

  // Where the blob of `key` lives (for tests and tools).
  std::filesystem::path BlobPath(const BlobKey& key) const;
  std::filesystem::path ManifestPath(absl::string_view tenant, absl::string_view context_id) const;
  // Temp files removed by Open (for tests / logs).
  uint64_t temp_files_removed_at_open() const { return temp_files_removed_; }

 private:
  DiskStore(std::filesystem::path root, uint64_t capacity_bytes);
  absl::Status Rebuild();
  // Atomic write in two steps: WriteTemp writes and fsyncs a temp file next to `final_path`
  // (no lock held); RenameLocked renames it over `final_path` (lock held); the caller then
  // fsyncs the directory.
  absl::StatusOr<std::filesystem::path> WriteTemp(const std::filesystem::path& final_path,
                                                  absl::string_view name,
                                                  absl::string_view payload);
  absl::Status RenameLocked(const std::filesystem::path& tmp,
                            const std::filesystem::path& final_path);
  struct Entry {
    std::string key;
    uint64_t bytes;
  };
  using Lru = std::list<Entry>;  // front = most recently used
  absl::Status CheckSize(const BlobKey& key, size_t size) const;
  void EraseLocked(std::unordered_map<std::string, Lru::iterator>::iterator it);
  void InsertLocked(const std::string& key, uint64_t bytes);

  const std::filesystem::path root_;
  const uint64_t capacity_bytes_;
  std::atomic<uint64_t> temp_counter_{0};
  uint64_t temp_files_removed_ = 0;

  std::mutex mu_;
  Lru lru_;
  std::unordered_map<std::string, Lru::iterator> index_;
  std::set<std::string> manifest_names_;  // "<tenant>/<context id>"
  StoreStats stats_;
};

}  // namespace ctx::store
