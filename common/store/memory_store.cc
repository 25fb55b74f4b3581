#include "common/store/memory_store.h"

#include "absl/strings/str_cat.h"

namespace ctx::store {

MemoryStore::MemoryStore(uint64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {
  stats_.capacity_bytes = capacity_bytes;
}

void MemoryStore::EraseLocked(std::unordered_map<std::string, Lru::iterator>::iterator it) {
  stats_.bytes -= it->second->bytes.size();
  stats_.items -= 1;
  lru_.erase(it->second);
  index_.erase(it);
}

absl::Status MemoryStore::CheckSize(const BlobKey& key, size_t size) const {
  if (capacity_bytes_ != 0 && size > capacity_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob ", key.ToString(), " is ", size, " bytes, larger than the memory store capacity of ",
        capacity_bytes_, " bytes; raise the capacity or use a smaller chunk size"));
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::PutMany(std::span<const BlobWrite> blobs) {
  for (const BlobWrite& b : blobs) {
    if (auto s = CheckSize(b.key, b.bytes.size()); !s.ok()) return s;
  }
  return ChunkStore::PutMany(blobs);
}

absl::Status MemoryStore::Put(const BlobKey& key, absl::string_view bytes) {
  if (auto s = CheckSize(key, bytes.size()); !s.ok()) return s;
  std::string k = key.ToString();
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = index_.find(k); it != index_.end()) EraseLocked(it);
  // Evict from the LRU tail until the new blob fits.
  while (capacity_bytes_ != 0 && stats_.bytes + bytes.size() > capacity_bytes_ && !lru_.empty()) {
    EraseLocked(index_.find(lru_.back().key));
    stats_.evictions += 1;
  }
  lru_.push_front(Entry{k, std::string(bytes)});
  index_.emplace(std::move(k), lru_.begin());
  stats_.bytes += bytes.size();
  stats_.items += 1;
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryStore::Get(const BlobKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key.ToString());
  if (it == index_.end()) {
    stats_.misses += 1;
    return absl::NotFoundError(absl::StrCat("chunk blob ", key.ToString(), " not in store"));
  }
  lru_.splice(lru_.begin(), lru_, it->second);  // mark as most recently used
  stats_.hits += 1;
  return it->second->bytes;
}

absl::StatusOr<bool> MemoryStore::Contains(const BlobKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.contains(key.ToString());
}

absl::Status MemoryStore::Delete(const BlobKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = index_.find(key.ToString()); it != index_.end()) EraseLocked(it);
  return absl::OkStatus();
}

absl::Status MemoryStore::PutManifest(absl::string_view tenant, absl::string_view context_id,
                                      absl::string_view bytes) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  if (auto s = ValidateName("context id", context_id); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  manifests_[std::string(tenant)][std::string(context_id)] = std::string(bytes);
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryStore::GetManifest(absl::string_view tenant,
                                                     absl::string_view context_id) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  if (auto s = ValidateName("context id", context_id); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto t = manifests_.find(tenant);
  if (t != manifests_.end()) {
    auto c = t->second.find(std::string(context_id));
    if (c != t->second.end()) return c->second;
  }
  return absl::NotFoundError(
      absl::StrCat("context '", context_id, "' not found for tenant '", tenant, "'"));
}

absl::Status MemoryStore::DeleteManifest(absl::string_view tenant, absl::string_view context_id) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  if (auto s = ValidateName("context id", context_id); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto t = manifests_.find(tenant);
  if (t != manifests_.end()) {
    t->second.erase(std::string(context_id));
    if (t->second.empty()) manifests_.erase(t);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MemoryStore::ListManifests(absl::string_view tenant) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids;
  auto t = manifests_.find(tenant);
  if (t != manifests_.end()) {
    for (const auto& [id, bytes] : t->second) ids.push_back(id);
  }
  return ids;
}

StoreStats MemoryStore::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  StoreStats s = stats_;
  s.manifests = 0;
  for (const auto& [tenant, m] : manifests_) s.manifests += m.size();
  return s;
}

}  // namespace ctx::store
