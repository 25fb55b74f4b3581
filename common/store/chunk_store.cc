#include "common/store/chunk_store.h"

#include <charconv>

#include "absl/strings/str_cat.h"

namespace ctx::store {
namespace {

bool ParseU32(absl::string_view s, uint32_t* out) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

std::string BlobKey::ToString() const {
  return absl::StrCat(hash.Hex(), ".e", encoding, ".l", level);
}

absl::StatusOr<BlobKey> BlobKey::Parse(absl::string_view s) {
  // 32 hex + ".e" + digits + ".l" + digits
  const auto bad = [&] { return absl::InvalidArgumentError(absl::StrCat("bad blob key: ", s)); };
  if (s.size() < 32 + 6 || s.substr(32, 2) != ".e") return bad();
  auto hash = ChunkHash::FromHex(s.substr(0, 32));
  if (!hash.ok()) return bad();
  const absl::string_view rest = s.substr(34);
  const size_t dot = rest.find(".l");
  if (dot == absl::string_view::npos) return bad();
  BlobKey key;
  key.hash = *hash;
  if (!ParseU32(rest.substr(0, dot), &key.encoding) || !ParseU32(rest.substr(dot + 2), &key.level))
    return bad();
  return key;
}

std::vector<absl::StatusOr<std::string>> ChunkStore::GetMany(std::span<const BlobKey> keys) {
  std::vector<absl::StatusOr<std::string>> out;
  out.reserve(keys.size());
  for (const BlobKey& k : keys) out.push_back(Get(k));
  return out;
}

absl::Status ChunkStore::PutMany(std::span<const BlobWrite> blobs) {
  for (const BlobWrite& b : blobs) {
    if (auto s = Put(b.key, b.bytes); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ValidateName(absl::string_view what, absl::string_view name) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be 1..128 characters, got ", name.size()));
  }
  if (name[0] == '.') {
    return absl::InvalidArgumentError(absl::StrCat(what, " must not start with '.': ", name));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " may contain only [A-Za-z0-9._-]: '", name, "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace ctx::store
