#include "common/store/disk_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ctx::store {
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'C', 'T', 'X', 'B', 'L', 'O', 'B', '1'};
constexpr size_t kHeaderBytes = 24;
constexpr char kTempPrefix[] = ".tmp.";
constexpr char kBlobSuffix[] = ".blob";
constexpr char kManifestSuffix[] = ".manifest";

void PutU64LE(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint64_t GetU64LE(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t Checksum(absl::string_view name, absl::string_view payload) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, name.data(), name.size());
  XXH3_64bits_update(st, payload.data(), payload.size());
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

absl::Status ErrnoStatus(absl::string_view what, const fs::path& p, int err) {
  return absl::InternalError(absl::StrCat(what, " ", p.string(), ": ", std::strerror(err)));
}

absl::Status FsyncDir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open dir", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync dir", dir, err);
  return absl::OkStatus();
}

// Creates `dir` and any missing parents, fsyncing each new directory's parent so that the
// directory entry itself survives a crash.
absl::Status EnsureDir(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return absl::OkStatus();
  if (dir.has_parent_path() && dir.parent_path() != dir) {
    if (auto s = EnsureDir(dir.parent_path()); !s.ok()) return s;
  }
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus("mkdir", dir, errno);
  return FsyncDir(dir.parent_path());
}

struct ReadResult {
  std::string payload;
  ino_t inode = 0;
};

// NotFound if absent; DataLoss if the file is torn or fails its checksum.
absl::StatusOr<ReadResult> ReadChecked(const fs::path& path, absl::string_view name,
                                       absl::string_view checksum_name, ino_t* inode_out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(name, " not in store"));
    return ErrnoStatus("open", path, errno);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus("fstat", path, err);
  }
  *inode_out = st.st_ino;
  std::string buf(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  buf.resize(done);
  const auto loss = [&](absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("stored file for ", name, " is corrupt (", why, "): ", path.string()));
  };
  if (buf.size() < kHeaderBytes) return loss("shorter than its header");
  if (std::memcmp(buf.data(), kMagic, sizeof(kMagic)) != 0) return loss("bad magic");
  const uint64_t len = GetU64LE(buf.data() + 8);
  if (len != buf.size() - kHeaderBytes) return loss("length mismatch, torn write?");
  const absl::string_view payload(buf.data() + kHeaderBytes, len);
  if (Checksum(checksum_name, payload) != GetU64LE(buf.data() + 16))
    return loss("checksum mismatch");
  ReadResult r;
  r.payload = std::string(payload);
  r.inode = st.st_ino;
  return r;
}

std::string ManifestName(absl::string_view tenant, absl::string_view context_id) {
  return absl::StrCat(tenant, "/", context_id);
}

}  // namespace

DiskStore::DiskStore(fs::path root, uint64_t capacity_bytes)
    : root_(std::move(root)), capacity_bytes_(capacity_bytes) {
  stats_.capacity_bytes = capacity_bytes;
}

absl::StatusOr<std::unique_ptr<DiskStore>> DiskStore::Open(const fs::path& root,
                                                           uint64_t capacity_bytes) {
  std::unique_ptr<DiskStore> store(new DiskStore(root, capacity_bytes));
  if (auto s = EnsureDir(root / "chunks"); !s.ok()) return s;
  if (auto s = EnsureDir(root / "manifests"); !s.ok()) return s;
  if (auto s = store->Rebuild(); !s.ok()) return s;
  return store;
}

fs::path DiskStore::BlobPath(const BlobKey& key) const {
  const std::string k = key.ToString();
  return root_ / "chunks" / k.substr(0, 2) / k.substr(2, 2) / (k + kBlobSuffix);
}

fs::path DiskStore::ManifestPath(absl::string_view tenant, absl::string_view context_id) const {
  return root_ / "manifests" / std::string(tenant) / absl::StrCat(context_id, kManifestSuffix);
}

absl::Status DiskStore::Rebuild() {
  struct Found {
    std::string key;
    uint64_t bytes;
    fs::file_time_type mtime;
  };
  std::vector<Found> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root_, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const fs::path& p = it->path();
    const std::string file = p.filename().string();
    if (absl::StartsWith(file, kTempPrefix)) {  // a write that never committed
      fs::remove(p, ec);
      ++temp_files_removed_;
      continue;
    }
    const std::string rel = p.lexically_relative(root_).string();
    if (absl::StartsWith(rel, "chunks/") && absl::EndsWith(file, kBlobSuffix)) {
      auto key = BlobKey::Parse(file.substr(0, file.size() - strlen(kBlobSuffix)));
      if (!key.ok()) continue;  // not ours
      const uint64_t size = it->file_size(ec);
      found.push_back({key->ToString(), size >= kHeaderBytes ? size - kHeaderBytes : 0,
                       it->last_write_time(ec)});
    } else if (absl::StartsWith(rel, "manifests/") && absl::EndsWith(file, kManifestSuffix)) {
      const std::string tenant = p.parent_path().filename().string();
      const std::string id = file.substr(0, file.size() - strlen(kManifestSuffix));
      if (ValidateName("tenant", tenant).ok() && ValidateName("context id", id).ok()) {
        manifest_names_.insert(ManifestName(tenant, id));
      }
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("scanning ", root_.string(), ": ", ec.message()));
  // Oldest first, so that pushing to the front leaves the newest most recently used.
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.mtime < b.mtime; });
  std::lock_guard<std::mutex> lock(mu_);
  for (const Found& f : found) InsertLocked(f.key, f.bytes);
  return absl::OkStatus();
}

void DiskStore::EraseLocked(std::unordered_map<std::string, Lru::iterator>::iterator it) {
  stats_.bytes -= it->second->bytes;
  stats_.items -= 1;
  lru_.erase(it->second);
  index_.erase(it);
}

// Inserts (or replaces) `key` as most recently used, then evicts from the tail to fit the cap.
void DiskStore::InsertLocked(const std::string& key, uint64_t bytes) {
  if (auto it = index_.find(key); it != index_.end()) EraseLocked(it);
  lru_.push_front(Entry{key, bytes});
  index_.emplace(key, lru_.begin());
  stats_.bytes += bytes;
  stats_.items += 1;
  while (capacity_bytes_ != 0 && stats_.bytes > capacity_bytes_ && lru_.size() > 1) {
    auto victim = index_.find(lru_.back().key);
    auto parsed = BlobKey::Parse(victim->first);
    if (parsed.ok()) {
      std::error_code ec;
      fs::remove(BlobPath(*parsed), ec);
    }
    EraseLocked(victim);
    stats_.evictions += 1;
  }
}

absl::StatusOr<fs::path> DiskStore::WriteTemp(const fs::path& final_path, absl::string_view name,
                                              absl::string_view payload) {
  const fs::path dir = final_path.parent_path();
  if (auto s = EnsureDir(dir); !s.ok()) return s;
  const fs::path tmp = dir / absl::StrCat(kTempPrefix, ::getpid(), ".", temp_counter_.fetch_add(1));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("create", tmp, errno);
  char header[kHeaderBytes];
  std::memcpy(header, kMagic, sizeof(kMagic));
  PutU64LE(header + 8, payload.size());
  PutU64LE(header + 16, Checksum(name, payload));
  const auto write_all = [&](const char* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  };
  const bool ok = write_all(header, kHeaderBytes) && write_all(payload.data(), payload.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return ErrnoStatus("write", tmp, err);
  }
  return tmp;
}

absl::Status DiskStore::RenameLocked(const fs::path& tmp, const fs::path& final_path) {
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus("rename onto", final_path, err);
  }
  return absl::OkStatus();
}

absl::Status DiskStore::CheckSize(const BlobKey& key, size_t size) const {
  if (capacity_bytes_ != 0 && size > capacity_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob ", key.ToString(), " is ", size, " bytes, larger than the disk store capacity of ",
        capacity_bytes_, " bytes; raise the capacity or use a smaller chunk size"));
  }
  return absl::OkStatus();
}

// Group commit: every temp file is written and fsynced, then all are renamed under one lock,
// then each distinct directory is fsynced once (instead of once per blob).
absl::Status DiskStore::PutMany(std::span<const BlobWrite> blobs) {
  for (const BlobWrite& b : blobs) {
    if (auto s = CheckSize(b.key, b.bytes.size()); !s.ok()) return s;
  }
  std::vector<fs::path> temps, finals;
  const auto discard = [&] {
    for (const fs::path& t : temps) ::unlink(t.c_str());
  };
  for (const BlobWrite& b : blobs) {
    finals.push_back(BlobPath(b.key));
    auto tmp = WriteTemp(finals.back(), b.key.ToString(), b.bytes);
    if (!tmp.ok()) {
      discard();
      return tmp.status();
    }
    temps.push_back(*tmp);
  }
  std::set<fs::path> dirs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < blobs.size(); ++i) {
      if (auto s = RenameLocked(temps[i], finals[i]); !s.ok()) {
        temps.erase(temps.begin(), temps.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        discard();
        return s;
      }
      InsertLocked(blobs[i].key.ToString(), blobs[i].bytes.size());
      dirs.insert(finals[i].parent_path());
    }
  }
  for (const fs::path& d : dirs) {
    if (auto s = FsyncDir(d); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status DiskStore::Put(const BlobKey& key, absl::string_view bytes) {
  if (auto s = CheckSize(key, bytes.size()); !s.ok()) return s;
  const std::string k = key.ToString();
  const fs::path path = BlobPath(key);
  // The slow part (write + fsync) runs unlocked; rename and index update happen together under
  // the lock, so the index never disagrees with the directory (e.g. an eviction racing a Put).
  auto tmp = WriteTemp(path, k, bytes);
  if (!tmp.ok()) return tmp.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto s = RenameLocked(*tmp, path); !s.ok()) return s;
    InsertLocked(k, bytes.size());
  }
  return FsyncDir(path.parent_path());  // make the rename durable
}

absl::StatusOr<std::string> DiskStore::Get(const BlobKey& key) {
  const std::string k = key.ToString();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(k);
    if (it == index_.end()) {
      stats_.misses += 1;
      return absl::NotFoundError(absl::StrCat("chunk blob ", k, " not in store"));
    }
    lru_.splice(lru_.begin(), lru_, it->second);
  }
  // The file is read outside the lock: a concurrent rename replaces it with another complete
  // file, a concurrent eviction makes the open fail with NotFound.
  const fs::path path = BlobPath(key);
  ino_t inode = 0;
  auto r = ReadChecked(path, absl::StrCat("chunk blob ", k), k, &inode);
  std::lock_guard<std::mutex> lock(mu_);
  if (!r.ok()) {
    stats_.misses += 1;
    if (absl::IsNotFound(r.status()) && ::access(path.c_str(), F_OK) != 0) {
      // Deleted behind our back (or evicted meanwhile): keep the index truthful.
      if (auto it = index_.find(k); it != index_.end()) EraseLocked(it);
    }
    if (absl::IsDataLoss(r.status())) {
      // Remove the corrupt file, unless a concurrent Put already replaced it.
      struct stat st;
      if (::stat(path.c_str(), &st) == 0 && st.st_ino == inode) {
        ::unlink(path.c_str());
        if (auto it = index_.find(k); it != index_.end()) EraseLocked(it);
      }
    }
    return r.status();
  }
  stats_.hits += 1;
  return std::move(r->payload);
}

absl::StatusOr<bool> DiskStore::Contains(const BlobKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.contains(key.ToString());
}

absl::Status DiskStore::Delete(const BlobKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  const fs::path path = BlobPath(key);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("unlink", path, errno);
  if (auto it = index_.find(key.ToString()); it != index_.end()) EraseLocked(it);
  return absl::OkStatus();
}

absl::Status DiskStore::PutManifest(absl::string_view tenant, absl::string_view context_id,
                                    absl::string_view bytes) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  if (auto s = ValidateName("context id", context_id); !s.ok()) return s;
  const std::string name = ManifestName(tenant, context_id);
  const fs::path path = ManifestPath(tenant, context_id);
  auto tmp = WriteTemp(path, name, bytes);
  if (!tmp.ok()) return tmp.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto s = RenameLocked(*tmp, path); !s.ok()) return s;
    manifest_names_.insert(name);
  }
  return FsyncDir(path.parent_path());
}

absl::StatusOr<std::string> DiskStore::GetManifest(absl::string_view tenant,
                                                   absl::string_view context_id) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  if (auto s = ValidateName("context id", context_id); !s.ok()) return s;
  ino_t inode = 0;
  auto r = ReadChecked(ManifestPath(tenant, context_id),
                       absl::StrCat("context '", context_id, "' of tenant '", tenant, "'"),
                       ManifestName(tenant, context_id), &inode);
  if (!r.ok()) {
    if (absl::IsNotFound(r.status())) {
      return absl::NotFoundError(
          absl::StrCat("context '", context_id, "' not found for tenant '", tenant, "'"));
    }
    return r.status();
  }
  return std::move(r->payload);
}

absl::Status DiskStore::DeleteManifest(absl::string_view tenant, absl::string_view context_id) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  if (auto s = ValidateName("context id", context_id); !s.ok()) return s;
  const fs::path path = ManifestPath(tenant, context_id);
  std::lock_guard<std::mutex> lock(mu_);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus("unlink", path, errno);
  }
  manifest_names_.erase(ManifestName(tenant, context_id));
  return FsyncDir(path.parent_path());  // make the deletion durable
}

absl::StatusOr<std::vector<std::string>> DiskStore::ListManifests(absl::string_view tenant) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  const std::string prefix = absl::StrCat(tenant, "/");
  std::vector<std::string> ids;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = manifest_names_.lower_bound(prefix);
       it != manifest_names_.end() && absl::StartsWith(*it, prefix); ++it) {
    ids.push_back(it->substr(prefix.size()));
  }
  return ids;
}

StoreStats DiskStore::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  StoreStats s = stats_;
  s.manifests = manifest_names_.size();
  return s;
}

}  // namespace ctx::store
