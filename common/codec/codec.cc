// KvCodec construction and the decode entry points (dispatch on the chunk's encoding kind).
#include "common/codec/codec.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/codec/baselines.h"
#include "common/codec/freq_table.h"
#include "common/codec/level_table.h"
#include "common/codec/prepared_tables.h"
#include "common/codec/quantizer.h"

namespace ctx::codec {

std::vector<RansSymbol> BuildEncodeSymbols(std::span<const uint16_t> freqs, int alphabet) {
  std::vector<RansSymbol> out(freqs.size());
  for (size_t k = 0; k < freqs.size(); k += alphabet) {
    uint32_t start = 0;
    for (int s = 0; s < alphabet; ++s) {
      out[k + s] = RansSymbol{static_cast<uint16_t>(start), freqs[k + s]};
      start += freqs[k + s];
    }
  }
  return out;
}

absl::StatusOr<KvCodec> KvCodec::Create(CodecProfile profile) {
  if (absl::Status s = ValidateProfile(profile); !s.ok()) return s;
  if (profile.levels.empty()) return absl::InvalidArgumentError("codec profile has no levels");
  auto prepared = std::make_shared<PreparedTables>();
  for (const SlotTable& t : profile.tables) {
    PreparedSlotTable p;
    p.slot = t.slot;
    p.bins = t.bins;
    p.alphabet = AlphabetSize(t.bins);
    p.enc = BuildEncodeSymbols(t.freqs, p.alphabet);
    p.cost.resize(t.freqs.size());
    for (size_t i = 0; i < t.freqs.size(); ++i)
      p.cost[i] = static_cast<float>(SymbolCostBits(t.freqs[i]));
    p.dec = RansDecodeTables::Build(t.freqs, p.alphabet);
    prepared->tables.push_back(std::move(p));
  }
  KvCodec codec;
  codec.tables_hash_ = profile.TablesHash();
  codec.profile_ = std::make_shared<const CodecProfile>(std::move(profile));
  codec.prepared_ = std::move(prepared);
  return codec;
}

absl::StatusOr<KvCodec> KvCodec::CreateDefault(ModelFingerprint fingerprint, KvGeometry geometry) {
  CodecProfile p;
  p.fingerprint = fingerprint;
  p.geometry = geometry;
  p.levels = DefaultLevels(geometry.layers);
  p.default_level = DefaultLevelIndex();
  return Create(std::move(p));
}

absl::Status KvCodec::DecodeParsed(const ParsedChunk& parsed, const DecodeOptions& options,
                                   std::span<float> out) const {
  const ChunkHeader& h = parsed.header;
  if (options.expected_fingerprint && *options.expected_fingerprint != h.fingerprint) {
    return absl::InvalidArgumentError("KV chunk is from another model (fingerprint mismatch)");
  }
  if (options.expected_geometry && !(*options.expected_geometry == h.geometry)) {
    return absl::InvalidArgumentError("KV chunk geometry differs from the receiver's model");
  }
  const uint64_t elements =
      static_cast<uint64_t>(h.token_count) * h.geometry.channels() * h.geometry.slots();
  if (elements > kMaxDecodedElements) return absl::InvalidArgumentError("KV chunk too large");
  if (out.size() != elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode buffer holds ", out.size(), " floats, chunk has ", elements));
  }
  switch (h.kind) {
    case EncodingKind::kRawF16:
      return DecodeRawF16Payload(h, parsed.payload, out);
    case EncodingKind::kInt8:
      return DecodeInt8Payload(h, parsed.payload, out);
    case EncodingKind::kRans:
      return DecodeRans(h, parsed.payload, out);
  }
  return absl::InvalidArgumentError("unknown KV encoding kind");
}

absl::Status KvCodec::DecodeInto(absl::string_view bytes, const DecodeOptions& options,
                                 std::span<float> out, ChunkHeader* header) const {
  auto parsed = ParseChunk(bytes);
  if (!parsed.ok()) return parsed.status();
  if (header) *header = parsed->header;
  return DecodeParsed(*parsed, options, out);
}

absl::StatusOr<DecodedChunk> KvCodec::Decode(absl::string_view bytes,
                                             const DecodeOptions& options) const {
  auto parsed = ParseChunk(bytes);
  if (!parsed.ok()) return parsed.status();
  const ChunkHeader& h = parsed->header;
  const uint64_t elements =
      static_cast<uint64_t>(h.token_count) * h.geometry.channels() * h.geometry.slots();
  if (elements > kMaxDecodedElements) return absl::InvalidArgumentError("KV chunk too large");
  // Everything that can be checked from the header is checked before the output is
  // allocated: a ~100-byte header (its checksum is no secret) could otherwise make us
  // allocate and zero up to kMaxDecodedElements floats (found by tests/fuzz).
  if (options.expected_fingerprint && *options.expected_fingerprint != h.fingerprint) {
    return absl::InvalidArgumentError("KV chunk is from another model (fingerprint mismatch)");
  }
  if (options.expected_geometry && !(*options.expected_geometry == h.geometry)) {
    return absl::InvalidArgumentError("KV chunk geometry differs from the receiver's model");
  }
  // Every encoding carries at least 2 bytes per (present slot, token): an fp16 value or scale.
  if (h.payload_size < uint64_t{2} * h.token_count * static_cast<uint64_t>(h.SlotsPresent())) {
    return absl::DataLossError("KV chunk payload is too small for its token count");
  }
  DecodedChunk d;
  d.header = h;
  d.kv.resize(elements);
  if (absl::Status s = DecodeParsed(*parsed, options, d.kv); !s.ok()) return s;
  for (int slot = 0; slot < h.geometry.slots(); ++slot) {
    if (!h.SlotPresent(slot)) d.missing_slots.push_back(slot);
  }
  return d;
}

}  // namespace ctx::codec
