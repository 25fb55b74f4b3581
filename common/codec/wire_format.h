// The chunk container shared by every encoding (spec: docs/kv-wire-format.md).
//
//   [fixed 96-byte header][payload: section directory + sections]
//
// The header names the encoding, the model, the geometry, the token range and which
// (layer, K|V) slots are present; its last field is an XXH3-64 checksum chained over the
// header's first 88 bytes and then the payload (see ChunkChecksum). ParseChunk validates all
// of it before any payload byte is interpreted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/codec/kv_chunk.h"

namespace ctx::codec {

inline constexpr uint32_t kChunkMagic = 0x4B585443;  // bytes "CTXK" (little-endian u32)
inline constexpr uint16_t kChunkVersion = 4;
inline constexpr size_t kChunkHeaderSize = 96;
inline constexpr int kMaxLayers = 64;       // slot masks are two u64
inline constexpr int kMaxChannels = 65535;  // C fits in u16 geometry fields
inline constexpr uint8_t kNoLevel = 0xff;
// Most tokens one chunk may declare (the kvcache service's chunk_tokens limit). With at least
// one slot present and >= 1 payload byte per (present slot, token), a decoded chunk is at most
// 2 * kMaxLayers * C floats per payload byte, and never more than kMaxDecodedElements.
inline constexpr uint32_t kMaxChunkTokens = 65536;

enum class EncodingKind : uint8_t {
  kRawF16 = 0,  // baseline: every value as IEEE fp16
  kInt8 = 1,    // baseline: per-(layer, token) scale + 255-level symbols, one byte each
  kRans = 2,    // CacheGen-style quantization + static/per-chunk-table rANS
};
absl::string_view EncodingKindName(EncodingKind kind);

// dtype of the KV the chunk stands for (what the decoder should hand to the engine).
enum class KvDType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2 };

struct ChunkHeader {
  EncodingKind kind = EncodingKind::kRans;
  uint8_t level = kNoLevel;  // profile level index, kNoLevel for baselines
  KvDType dtype = KvDType::kF16;
  ModelFingerprint fingerprint{};
  KvGeometry geometry;
  uint64_t token_begin = 0;
  uint32_t token_count = 0;
  uint64_t key_mask = 0;      // bit l set: K of layer l is in the payload
  uint64_t value_mask = 0;    // bit l set: V of layer l is in the payload
  uint64_t profile_hash = 0;  // hash of the profile tables the payload refers to (0: none)
  uint64_t payload_size = 0;
  uint64_t checksum = 0;

  bool SlotPresent(int slot) const {
    const uint64_t mask = (slot & 1) ? value_mask : key_mask;
    return (mask >> (slot / 2)) & 1;
  }
  int SlotsPresent() const;
};

// Mask with the low `layers` bits set.
uint64_t AllLayersMask(int layers);

// XXH3-64 of the header's first 88 bytes, used as the seed of XXH3-64 over the payload.
uint64_t ChunkChecksum(absl::string_view header88, absl::string_view payload);

// Appends the header (checksum computed from `payload`) and the payload to `out`.
void WriteChunk(ChunkHeader header, absl::string_view payload, std::string* out);

struct ParsedChunk {
  ChunkHeader header;
  absl::string_view payload;  // points into the parsed bytes
};

// Validates magic, version, enums, geometry, masks (at least one slot present), token count
// (1..kMaxChunkTokens), payload length (exact) and checksum.
// DataLossError for truncated/corrupted bytes, InvalidArgument for well-formed chunks this
// build cannot accept (unknown version or kind, impossible geometry).
absl::StatusOr<ParsedChunk> ParseChunk(absl::string_view bytes);

// Payload section directory: u32 count, then count x (u32 offset, u32 length), offsets
// relative to the payload start; sections must lie inside the payload and not overlap the
// directory. Returns the section views.
void WriteSections(const std::vector<std::string>& sections, std::string* payload);
absl::StatusOr<std::vector<absl::string_view>> ReadSections(absl::string_view payload,
                                                            size_t expected_count);

}  // namespace ctx::codec

namespace ctx::codec {

// Checks what an encoder needs of a chunk view: geometry within the wire limits, T > 0,
// data size == layers * 2 * T * C, token_ids empty or T ids >= 0.
absl::Status ValidateChunkView(const KvChunkView& chunk);

// Largest decoded chunk accepted (floats); guards allocations driven by header fields.
inline constexpr uint64_t kMaxDecodedElements = uint64_t{1} << 30;

}  // namespace ctx::codec
