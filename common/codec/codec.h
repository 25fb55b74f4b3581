// KvCodec: encodes KV chunks at a level of a CodecProfile and decodes any chunk back
// (CacheGen-style quantization + rANS, and the raw-fp16 / 8-bit baselines).
// Pure: bytes in, bytes out. Thread-safe for concurrent Encode/Decode calls (const);
// DecodeChunks decodes many chunks in parallel.
//
//   auto codec = KvCodec::Create(profile);               // prepares rANS tables once
//   std::string bytes = *codec->Encode(chunk, level);    // chunk: KvChunkView (float32)
//   DecodedChunk d = *codec->Decode(bytes, {.expected_fingerprint = fp});
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/codec/kv_chunk.h"
#include "common/codec/profile.h"
#include "common/codec/wire_format.h"

namespace ctx::codec {

// How each slot's probability tables are chosen (kAuto: whichever codes the slot smallest,
// counting the bytes of tables carried in the chunk; profile tables cost nothing).
// kProfile: the profile's order-0 tables only; kProfileRepeat: the profile's tables with repeat
// contexts on every slot (needs the chunk's token ids and repeat tables in the profile).
enum class TableChoice { kAuto, kProfile, kChunkPerChannel, kChunkShared, kProfileRepeat };

// Per-slot table mode on the wire (mode 3: profile tables + repeat contexts, repeat_map.h).
enum class TableMode : uint8_t {
  kProfile = 0,
  kChunkPerChannel = 1,
  kChunkShared = 2,
  kProfileRepeat = 3
};

struct EncodeOptions {
  KvDType dtype = KvDType::kF16;  // dtype the receiver wants the KV in (recorded only)
  TableChoice tables = TableChoice::kAuto;
};

struct DecodeOptions {
  std::optional<ModelFingerprint> expected_fingerprint;
  std::optional<KvGeometry> expected_geometry;
};

struct DecodedChunk {
  ChunkHeader header;
  std::vector<float> kv;           // [layers][K|V][T][C]; slots not sent are zero
  std::vector<int> missing_slots;  // slots (2*layer + kv) the chunk does not carry
};

// Sizes of one encoded chunk, for benchmarks and metrics.
struct EncodeStats {
  size_t header_bytes = 0;  // header + section/slot directories + rANS lane states
  size_t scale_bytes = 0;   // rans: per slot 4 bytes of grid + 1 byte per token
  size_t table_bytes = 0;   // tables carried in the chunk
  size_t repeat_bytes = 0;  // rans: the repeat map (side information; 0 if no slot uses it)
  size_t stream_bytes = 0;  // entropy-coded symbols' words (or raw values for baselines)
  size_t refine_bytes = 0;  // rans: raw refinement bits (payload, like the stream)
  size_t total_bytes = 0;
  int slots_with_chunk_tables = 0;
  int slots_with_repeat = 0;  // slots coded with repeat contexts (table mode 3)
};

// The bins and refinement bits per slot a kind-2 (rans) chunk was encoded with, read from its
// slot directory (0 bins for slots it does not carry; name empty). DataLoss if the directory
// is malformed, InvalidArgument for other kinds. For stores deciding whether a stored chunk
// still is what a profile level encodes (level tables are not covered by the profile hash).
absl::StatusOr<LevelSpec> RansChunkLevelSpec(const ParsedChunk& chunk);

struct PreparedTables;  // rANS encode/decode forms of the profile tables (codec.cc)

class KvCodec {
 public:
  // Validates the profile and prepares its tables. A profile without tables is fine: every
  // chunk then carries its own tables.
  static absl::StatusOr<KvCodec> Create(CodecProfile profile);
  // The default level table (level_table.h) without static tables.
  static absl::StatusOr<KvCodec> CreateDefault(ModelFingerprint fingerprint, KvGeometry geometry);

  const CodecProfile& profile() const { return *profile_; }

  // Encodes at profile level `level` (index into profile().levels).
  absl::StatusOr<std::string> Encode(const KvChunkView& chunk, int level,
                                     const EncodeOptions& options = {},
                                     EncodeStats* stats = nullptr) const;
  // Encodes with an ad-hoc bins table (header level = kNoLevel); for calibration searches.
  absl::StatusOr<std::string> EncodeWithBins(const KvChunkView& chunk, const LevelSpec& bins,
                                             const EncodeOptions& options = {},
                                             EncodeStats* stats = nullptr) const;

  // Decodes any chunk kind. Checks the fingerprint/geometry the caller expects and that the
  // chunk's profile tables are this codec's.
  absl::StatusOr<DecodedChunk> Decode(absl::string_view bytes,
                                      const DecodeOptions& options = {}) const;
  // Same, into a caller buffer of exactly layers*2*T*C floats (see ParseChunk for the header).
  absl::Status DecodeInto(absl::string_view bytes, const DecodeOptions& options,
                          std::span<float> out, ChunkHeader* header = nullptr) const;

  // Parallel decode of independent chunks: chunks[i] into outs[i] (each exactly its chunk's
  // layers*2*T*C floats) on up to `threads` threads (0: std::thread::hardware_concurrency(),
  // never more than chunks.size()), each thread taking the next undecoded chunk. The result is
  // bit-identical to decoding the chunks one by one (each chunk is decoded by one thread; the
  // prepared tables are shared and immutable). Returns OK or the error of the lowest-index
  // chunk that failed; `statuses`, if given, gets one status per chunk.
  absl::Status DecodeChunksInto(std::span<const absl::string_view> chunks,
                                const DecodeOptions& options,
                                std::span<const std::span<float>> outs, int threads = 0,
                                std::vector<absl::Status>* statuses = nullptr) const;
  // Same, allocating: one DecodedChunk per input chunk, in input order.
  absl::StatusOr<std::vector<DecodedChunk>> DecodeChunks(std::span<const absl::string_view> chunks,
                                                         const DecodeOptions& options = {},
                                                         int threads = 0) const;

 private:
  KvCodec() = default;
  absl::StatusOr<std::string> EncodeImpl(const KvChunkView& chunk, const LevelSpec& bins,
                                         uint8_t level, const EncodeOptions& options,
                                         EncodeStats* stats) const;
  absl::Status CheckHeader(const ChunkHeader& h, const DecodeOptions& options) const;
  absl::Status DecodeParsed(const ParsedChunk& chunk, const DecodeOptions& options,
                            std::span<float> out) const;
  absl::Status DecodeRans(const ChunkHeader& h, absl::string_view payload,
                          std::span<float> out) const;

  std::shared_ptr<const CodecProfile> profile_;
  std::shared_ptr<const PreparedTables> prepared_;
  uint64_t tables_hash_ = 0;
};

}  // namespace ctx::codec
