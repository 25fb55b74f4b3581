// ChunkStore: the one storage interface of the kvcache service (no gRPC here).
//
// Two kinds of objects:
//  - chunk blobs, keyed by BlobKey = (chunk hash, encoding kind, level). The chunk hash is
//    already scoped by model and tenant (see chunk_key.h), so a guessed hash of another
//    tenant's prefix cannot be computed without that tenant's tokens and name;
//  - context manifests, keyed by (tenant, context id): a serialized blob describing which
//    chunks make up a context. Commit protocol for writers: Put every chunk first, then
//    PutManifest LAST. A context is visible (GetManifest/ListManifests) only after all its
//    chunks are stored, and a crash before the manifest write leaves no visible context.
//
// Capacity: backends with a byte cap evict chunk blobs only (least recently used first);
// manifests are small and never evicted, so a manifest may outlive some of its chunks after
// eviction: readers must treat a NotFound chunk as "re-ingest", not as corruption.
// A single blob larger than the capacity is refused with RESOURCE_EXHAUSTED.
//
// Errors: NotFound (absent), DataLoss (stored bytes fail their checksum: never served),
// InvalidArgument (bad tenant/context id), ResourceExhausted (too big), Unavailable (backend
// down). All implementations are thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/store/chunk_key.h"

namespace ctx::store {

// Which encoding of a chunk a blob holds. The store treats it as an opaque small number; the
// codec owns the meaning (e.g. 0 raw fp16, 1 int8 baseline, 2 CacheGen-style).
struct BlobKey {
  ChunkHash hash;
  uint32_t encoding = 0;
  uint32_t level = 0;

  // "<32 hex>.e<encoding>.l<level>": the file name / Redis key suffix. Stable, documented.
  std::string ToString() const;
  static absl::StatusOr<BlobKey> Parse(absl::string_view s);
  friend bool operator==(const BlobKey&, const BlobKey&) = default;
};

struct StoreStats {
  uint64_t bytes = 0;           // payload bytes of stored chunk blobs
  uint64_t items = 0;           // number of stored chunk blobs
  uint64_t manifests = 0;       // number of stored manifests (where the backend can tell cheaply)
  uint64_t hits = 0;            // Get calls that returned bytes
  uint64_t misses = 0;          // Get calls that returned NotFound / DataLoss
  uint64_t evictions = 0;       // chunk blobs removed to respect the byte cap
  uint64_t capacity_bytes = 0;  // 0 = no cap enforced by this process
};

class ChunkStore {
 public:
  virtual ~ChunkStore() = default;

  virtual absl::Status Put(const BlobKey& key, absl::string_view bytes) = 0;
  virtual absl::StatusOr<std::string> Get(const BlobKey& key) = 0;
  virtual absl::StatusOr<bool> Contains(const BlobKey& key) = 0;
  // Deleting an absent key is OK (idempotent).
  virtual absl::Status Delete(const BlobKey& key) = 0;

  // Batched Get, one result per key in order. Default: a loop; Redis pipelines it.
  virtual std::vector<absl::StatusOr<std::string>> GetMany(std::span<const BlobKey> keys);

  // Stores several blobs (e.g. every chunk and level of one context before its manifest).
  // All three backends check every size first, so a too-large blob refuses the whole batch
  // with RESOURCE_EXHAUSTED before anything is written; after another error a subset may be
  // stored (the manifest is what commits a context). Default: Put in a loop. Disk batches the
  // directory fsyncs; Redis pipelines the writes in one round trip.
  struct BlobWrite {
    BlobKey key;
    absl::string_view bytes;
  };
  virtual absl::Status PutMany(std::span<const BlobWrite> blobs);

  // tenant and context_id: 1..128 chars of [A-Za-z0-9._-], not starting with '.'.
  virtual absl::Status PutManifest(absl::string_view tenant, absl::string_view context_id,
                                   absl::string_view bytes) = 0;
  virtual absl::StatusOr<std::string> GetManifest(absl::string_view tenant,
                                                  absl::string_view context_id) = 0;
  virtual absl::Status DeleteManifest(absl::string_view tenant, absl::string_view context_id) = 0;
  // Context ids of `tenant`, sorted. Never includes another tenant's contexts.
  virtual absl::StatusOr<std::vector<std::string>> ListManifests(absl::string_view tenant) = 0;

  virtual StoreStats Stats() = 0;
};

// Shared validation of tenant / context id names (used by every backend, so that all three
// accept exactly the same names and a name is always safe as a file or key component).
absl::Status ValidateName(absl::string_view what, absl::string_view name);

}  // namespace ctx::store
