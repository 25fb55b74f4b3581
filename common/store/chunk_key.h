// Chunk keys: a stable, seedless 128-bit hash chained over the token prefix.
//
//   h_0 = H(ZERO16, fingerprint, tenant, tokens[0 : C])
//   h_i = H(h_{i-1}, fingerprint, tenant, tokens[i*C : (i+1)*C])
//
// Because of the chain, h_i names the whole prefix tokens[0 : (i+1)*C] for one model and one
// tenant: identical prefixes share chunks across contexts and processes, two tenants never do.
//
// H is XXH3_128 (libxxhash, seedless XXH3_128bits) over this byte string (version 1, frozen):
//
//   offset  size  field
//   0       8     ASCII "ctxchk01" (domain tag and encoding version)
//   8       16    previous hash, canonical bytes (all zero for chunk 0)
//   24      16    model fingerprint (16 opaque bytes)
//   40      4     tenant length in bytes, u32 little-endian
//   44      T     tenant bytes (UTF-8, no terminator)
//   44+T    4     token count n, u32 little-endian
//   48+T    4*n   token ids, each u32 little-endian
//
// The 16 canonical bytes of a hash are XXH128_canonicalFromHash's (big-endian high64 then
// low64); Hex() prints those bytes. tests/store/chunk_key_test.cc pins a known value.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctx::store {

// 16 opaque bytes identifying a model (weights + config); the codec/model layer computes it.
using ModelFingerprint = std::array<uint8_t, 16>;

struct ChunkHash {
  std::array<uint8_t, 16> bytes{};  // canonical form (see header comment)

  std::string Hex() const;  // 32 lowercase hex chars
  static absl::StatusOr<ChunkHash> FromHex(absl::string_view hex);
  friend bool operator==(const ChunkHash&, const ChunkHash&) = default;
  friend auto operator<=>(const ChunkHash&, const ChunkHash&) = default;
};

// The exact byte string that is hashed for one chunk (exposed for tests and other languages).
std::string ChunkHashInput(const ChunkHash& prev, const ModelFingerprint& fingerprint,
                           absl::string_view tenant, std::span<const uint32_t> chunk_tokens);

// One link of the chain. `prev` is ChunkHash{} (all zeros) for the first chunk.
ChunkHash ComputeChunkHash(const ChunkHash& prev, const ModelFingerprint& fingerprint,
                           absl::string_view tenant, std::span<const uint32_t> chunk_tokens);

// Hashes of every chunk of `tokens` cut into chunks of `chunk_size` tokens. The trailing
// partial chunk gets a hash only when `include_partial` (it then names a prefix that a longer
// context will not share). chunk_size == 0 is an error.
absl::StatusOr<std::vector<ChunkHash>> ComputeChunkHashes(std::span<const uint32_t> tokens,
                                                          size_t chunk_size,
                                                          const ModelFingerprint& fingerprint,
                                                          absl::string_view tenant,
                                                          bool include_partial = false);

}  // namespace ctx::store
