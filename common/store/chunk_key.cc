#include "common/store/chunk_key.h"

#include <xxhash.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ctx::store {
namespace {

constexpr char kDomainTag[8] = {'c', 't', 'x', 'c', 'h', 'k', '0', '1'};

void AppendU32LE(std::string* out, uint32_t v) {
  char b[4] = {static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff),
               static_cast<char>((v >> 16) & 0xff), static_cast<char>((v >> 24) & 0xff)};
  out->append(b, 4);
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string ChunkHash::Hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(32, '0');
  for (size_t i = 0; i < 16; ++i) {
    s[2 * i] = kDigits[bytes[i] >> 4];
    s[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return s;
}

absl::StatusOr<ChunkHash> ChunkHash::FromHex(absl::string_view hex) {
  if (hex.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk hash must be 32 hex characters, got ", hex.size()));
  }
  ChunkHash h;
  for (size_t i = 0; i < 16; ++i) {
    const int hi = HexDigit(hex[2 * i]), lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(absl::StrCat("chunk hash has a non-hex character: ", hex));
    }
    h.bytes[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return h;
}

std::string ChunkHashInput(const ChunkHash& prev, const ModelFingerprint& fingerprint,
                           absl::string_view tenant, std::span<const uint32_t> chunk_tokens) {
  std::string buf;
  buf.reserve(8 + 16 + 16 + 4 + tenant.size() + 4 + 4 * chunk_tokens.size());
  buf.append(kDomainTag, sizeof(kDomainTag));
  buf.append(reinterpret_cast<const char*>(prev.bytes.data()), prev.bytes.size());
  buf.append(reinterpret_cast<const char*>(fingerprint.data()), fingerprint.size());
  AppendU32LE(&buf, static_cast<uint32_t>(tenant.size()));
  buf.append(tenant.data(), tenant.size());
  AppendU32LE(&buf, static_cast<uint32_t>(chunk_tokens.size()));
  for (uint32_t t : chunk_tokens) AppendU32LE(&buf, t);
  return buf;
}

ChunkHash ComputeChunkHash(const ChunkHash& prev, const ModelFingerprint& fingerprint,
                           absl::string_view tenant, std::span<const uint32_t> chunk_tokens) {
  const std::string input = ChunkHashInput(prev, fingerprint, tenant, chunk_tokens);
  const XXH128_hash_t h = XXH3_128bits(input.data(), input.size());
  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, h);
  ChunkHash out;
  std::memcpy(out.bytes.data(), canon.digest, 16);
  return out;
}

absl::StatusOr<std::vector<ChunkHash>> ComputeChunkHashes(std::span<const uint32_t> tokens,
                                                          size_t chunk_size,
                                                          const ModelFingerprint& fingerprint,
                                                          absl::string_view tenant,
                                                          bool include_partial) {
  if (chunk_size == 0) return absl::InvalidArgumentError("chunk_size must be > 0");
  std::vector<ChunkHash> out;
  out.reserve(tokens.size() / chunk_size + 1);
  ChunkHash prev;
  for (size_t begin = 0; begin < tokens.size(); begin += chunk_size) {
    const size_t n = std::min(chunk_size, tokens.size() - begin);
    if (n < chunk_size && !include_partial) break;
    prev = ComputeChunkHash(prev, fingerprint, tenant, tokens.subspan(begin, n));
    out.push_back(prev);
  }
  return out;
}

}  // namespace ctx::store
