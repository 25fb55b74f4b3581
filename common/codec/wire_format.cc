#include "common/codec/wire_format.h"

#include <xxhash.h>

#include <bit>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/codec/byte_io.h"

namespace ctx::codec {

// Header layout (little-endian), 96 bytes:
//   0 u32 magic "CTXK"    4 u16 version      6 u8 kind        7 u8 level
//   8 u8 dtype            9 u8 flags (0)    10 u16 layers     12 u16 kv_heads
//  14 u16 head_dim       16 u8[16] fingerprint                32 u64 token_begin
//  40 u32 token_count    44 u32 reserved(0) 48 u64 key_mask   56 u64 value_mask
//  64 u64 profile_hash   72 u64 payload_size                  80 u64 reserved(0)
//  88 u64 checksum = XXH3_64(payload, seed = XXH3_64(header[0..88)))
namespace {
constexpr size_t kChecksumOffset = 88;
}

absl::string_view EncodingKindName(EncodingKind kind) {
  switch (kind) {
    case EncodingKind::kRawF16:
      return "raw-f16";
    case EncodingKind::kInt8:
      return "int8";
    case EncodingKind::kRans:
      return "rans";
  }
  return "unknown";
}

int ChunkHeader::SlotsPresent() const {
  return std::popcount(key_mask) + std::popcount(value_mask);
}

uint64_t AllLayersMask(int layers) {
  return layers >= 64 ? ~uint64_t{0} : ((uint64_t{1} << layers) - 1);
}

uint64_t ChunkChecksum(absl::string_view header88, absl::string_view payload) {
  const uint64_t seed = XXH3_64bits(header88.data(), header88.size());
  return XXH3_64bits_withSeed(payload.data(), payload.size(), seed);
}

void WriteChunk(ChunkHeader h, absl::string_view payload, std::string* out) {
  const size_t start = out->size();
  ByteWriter w(out);
  w.U32(kChunkMagic);
  w.U16(kChunkVersion);
  w.U8(static_cast<uint8_t>(h.kind));
  w.U8(h.level);
  w.U8(static_cast<uint8_t>(h.dtype));
  w.U8(0);
  w.U16(static_cast<uint16_t>(h.geometry.layers));
  w.U16(static_cast<uint16_t>(h.geometry.kv_heads));
  w.U16(static_cast<uint16_t>(h.geometry.head_dim));
  w.Bytes(h.fingerprint.data(), h.fingerprint.size());
  w.U64(h.token_begin);
  w.U32(h.token_count);
  w.U32(0);
  w.U64(h.key_mask);
  w.U64(h.value_mask);
  w.U64(h.profile_hash);
  w.U64(payload.size());
  w.U64(0);
  const uint64_t sum =
      ChunkChecksum(absl::string_view(out->data() + start, kChecksumOffset), payload);
  w.U64(sum);
  w.Bytes(payload.data(), payload.size());
}

absl::StatusOr<ParsedChunk> ParseChunk(absl::string_view bytes) {
  if (bytes.size() < kChunkHeaderSize) {
    return absl::DataLossError(absl::StrCat("KV chunk truncated: ", bytes.size(),
                                            " bytes, the header alone is ", kChunkHeaderSize));
  }
  ByteReader r(bytes.substr(0, kChunkHeaderSize));
  ParsedChunk out;
  ChunkHeader& h = out.header;
  const uint32_t magic = r.U32();
  if (magic != kChunkMagic) {
    return absl::DataLossError("not a KV chunk: bad magic (expected \"CTXK\")");
  }
  const uint16_t version = r.U16();
  if (version != kChunkVersion) {
    return absl::InvalidArgumentError(absl::StrCat("KV chunk format version ", version,
                                                   " is not supported (this build reads ",
                                                   kChunkVersion, ")"));
  }
  const uint8_t kind = r.U8();
  h.level = r.U8();
  const uint8_t dtype = r.U8();
  const uint8_t flags = r.U8();
  h.geometry.layers = r.U16();
  h.geometry.kv_heads = r.U16();
  h.geometry.head_dim = r.U16();
  absl::string_view fp = r.Bytes(16);
  h.token_begin = r.U64();
  h.token_count = r.U32();
  const uint32_t reserved1 = r.U32();
  h.key_mask = r.U64();
  h.value_mask = r.U64();
  h.profile_hash = r.U64();
  h.payload_size = r.U64();
  const uint64_t reserved2 = r.U64();
  h.checksum = r.U64();
  if (!r.ok()) return absl::DataLossError("KV chunk header unreadable");
  std::memcpy(h.fingerprint.data(), fp.data(), 16);

  // Length and checksum first: any other oddity in a chunk whose checksum fails is corruption.
  const uint64_t available = bytes.size() - kChunkHeaderSize;
  if (h.payload_size != available) {
    return absl::DataLossError(absl::StrCat("KV chunk payload is ", available,
                                            " bytes, header says ", h.payload_size,
                                            " (truncated or trailing bytes)"));
  }
  out.payload = bytes.substr(kChunkHeaderSize);
  if (ChunkChecksum(bytes.substr(0, kChecksumOffset), out.payload) != h.checksum) {
    return absl::DataLossError("KV chunk checksum mismatch (corrupted bytes)");
  }
  if (kind > static_cast<uint8_t>(EncodingKind::kRans)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown KV encoding kind ", kind));
  }
  h.kind = static_cast<EncodingKind>(kind);
  if (dtype > static_cast<uint8_t>(KvDType::kBF16)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown KV dtype code ", dtype));
  }
  h.dtype = static_cast<KvDType>(dtype);
  if (flags != 0 || reserved1 != 0 || reserved2 != 0) {
    return absl::InvalidArgumentError("KV chunk uses reserved header fields (newer writer?)");
  }
  const KvGeometry& g = h.geometry;
  if (g.layers < 1 || g.layers > kMaxLayers || g.kv_heads < 1 || g.head_dim < 1 ||
      g.channels64() > kMaxChannels || h.token_count == 0 || h.token_count > kMaxChunkTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV chunk geometry invalid: layers=", g.layers, " kv_heads=", g.kv_heads,
                     " head_dim=", g.head_dim, " tokens=", h.token_count));
  }
  const uint64_t layer_bits = AllLayersMask(g.layers);
  if ((h.key_mask & ~layer_bits) || (h.value_mask & ~layer_bits)) {
    return absl::InvalidArgumentError("KV chunk slot mask names layers beyond the geometry");
  }
  if (h.key_mask == 0 && h.value_mask == 0) {
    return absl::InvalidArgumentError("KV chunk carries no slot (both slot masks are empty)");
  }
  return out;
}

void WriteSections(const std::vector<std::string>& sections, std::string* payload) {
  ByteWriter w(payload);
  const size_t base = payload->size();
  uint32_t offset = static_cast<uint32_t>(4 + 8 * sections.size());
  w.U32(static_cast<uint32_t>(sections.size()));
  for (const std::string& s : sections) {
    w.U32(offset);
    w.U32(static_cast<uint32_t>(s.size()));
    offset += static_cast<uint32_t>(s.size());
  }
  for (const std::string& s : sections) w.Bytes(s.data(), s.size());
  (void)base;
}

absl::StatusOr<std::vector<absl::string_view>> ReadSections(absl::string_view payload,
                                                            size_t expected_count) {
  ByteReader r(payload);
  const uint32_t count = r.U32();
  if (!r.ok() || count != expected_count) {
    return absl::DataLossError(
        absl::StrCat("KV chunk has ", count, " payload sections, expected ", expected_count));
  }
  const uint64_t dir_end = 4 + 8ull * count;
  std::vector<absl::string_view> out;
  out.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t off = r.U32();
    const uint64_t len = r.U32();
    if (!r.ok() || off < dir_end || off + len > payload.size()) {
      return absl::DataLossError(absl::StrCat("KV chunk section ", i, " out of bounds"));
    }
    out.push_back(payload.substr(off, len));
  }
  return out;
}

}  // namespace ctx::codec

namespace ctx::codec {

absl::Status ValidateChunkView(const KvChunkView& chunk) {
  const KvGeometry& g = chunk.geometry;
  if (g.layers < 1 || g.layers > kMaxLayers || g.kv_heads < 1 || g.head_dim < 1 ||
      g.channels64() > kMaxChannels || chunk.token_count == 0 ||
      chunk.token_count > kMaxChunkTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV chunk geometry not encodable: layers=", g.layers, " kv_heads=", g.kv_heads,
                     " head_dim=", g.head_dim, " tokens=", chunk.token_count));
  }
  if (chunk.data.size() != chunk.NumElements()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV chunk has ", chunk.data.size(), " floats, geometry needs ", chunk.NumElements()));
  }
  if (chunk.NumElements() > kMaxDecodedElements) {
    return absl::InvalidArgumentError("KV chunk too large for one wire chunk");
  }
  if (!chunk.token_ids.empty()) {
    if (chunk.token_ids.size() != chunk.token_count) {
      return absl::InvalidArgumentError(absl::StrCat("KV chunk has ", chunk.token_ids.size(),
                                                     " token ids for ", chunk.token_count,
                                                     " tokens"));
    }
    for (int32_t id : chunk.token_ids) {
      if (id < 0) return absl::InvalidArgumentError(absl::StrCat("KV chunk token id ", id, " < 0"));
    }
  }
  return absl::OkStatus();
}

}  // namespace ctx::codec
