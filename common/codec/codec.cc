// KvCodec construction and the decode entry points (dispatch on the chunk's encoding kind).
#include "common/codec/codec.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/codec/baselines.h"
#include "common/codec/freq_table.h"
#include "common/codec/level_table.h"
#include "common/codec/prepared_tables.h"
#include "common/codec/quantizer.h"

namespace ctx::codec {

std::vector<RansEncSymbol> BuildEncodeSymbols(std::span<const uint16_t> freqs, int alphabet) {
  std::vector<RansEncSymbol> out(freqs.size());
  for (size_t k = 0; k < freqs.size(); k += alphabet) {
    uint32_t start = 0;
    for (int s = 0; s < alphabet; ++s) {
      out[k + s] = MakeRansEncSymbol(start, freqs[k + s]);
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
    p.repeat = !t.repeat_freqs.empty();
    std::vector<uint16_t> freqs = t.freqs;
    freqs.insert(freqs.end(), t.repeat_freqs.begin(), t.repeat_freqs.end());
    p.enc = BuildEncodeSymbols(freqs, p.alphabet);
    p.cost.resize(freqs.size());
    for (size_t i = 0; i < freqs.size(); ++i)
      p.cost[i] = static_cast<float>(SymbolCostBits(freqs[i]));
    p.dec = RansDecodeTables::Build(freqs, p.alphabet);
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

// Everything that can be checked from the header alone, before any output is allocated.
absl::Status KvCodec::CheckHeader(const ChunkHeader& h, const DecodeOptions& options) const {
  if (options.expected_fingerprint && *options.expected_fingerprint != h.fingerprint) {
    return absl::InvalidArgumentError("KV chunk is from another model (fingerprint mismatch)");
  }
  if (options.expected_geometry && !(*options.expected_geometry == h.geometry)) {
    return absl::InvalidArgumentError("KV chunk geometry differs from the receiver's model");
  }
  // A chunk of this codec's model must have the profile's geometry, whatever its kind.
  if (h.fingerprint == profile_->fingerprint && !(h.geometry == profile_->geometry)) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV chunk geometry (", h.geometry.layers, " layers, ", h.geometry.kv_heads,
                     "x", h.geometry.head_dim, ") differs from its model's codec profile (",
                     profile_->geometry.layers, " layers, ", profile_->geometry.kv_heads, "x",
                     profile_->geometry.head_dim, ")"));
  }
  const uint64_t elements =
      static_cast<uint64_t>(h.token_count) * h.geometry.channels() * h.geometry.slots();
  if (elements > kMaxDecodedElements) return absl::InvalidArgumentError("KV chunk too large");
  // Every encoding carries at least 1 byte per (present slot, token): an fp16 value, an fp16
  // scale or a scale code.
  if (h.payload_size < uint64_t{h.token_count} * static_cast<uint64_t>(h.SlotsPresent())) {
    return absl::DataLossError("KV chunk payload is too small for its token count");
  }
  return absl::OkStatus();
}

absl::Status KvCodec::DecodeParsed(const ParsedChunk& parsed, const DecodeOptions& options,
                                   std::span<float> out) const {
  const ChunkHeader& h = parsed.header;
  if (absl::Status s = CheckHeader(h, options); !s.ok()) return s;
  const uint64_t elements =
      static_cast<uint64_t>(h.token_count) * h.geometry.channels() * h.geometry.slots();
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
  // Checked before the output is allocated: a ~100-byte header (its checksum is no secret)
  // must not make us allocate and zero a huge output (found by tests/fuzz).
  if (absl::Status s = CheckHeader(h, options); !s.ok()) return s;
  const uint64_t elements =
      static_cast<uint64_t>(h.token_count) * h.geometry.channels() * h.geometry.slots();
  DecodedChunk d;
  d.header = h;
  d.kv.resize(elements);
  if (absl::Status s = DecodeParsed(*parsed, options, d.kv); !s.ok()) return s;
  for (int slot = 0; slot < h.geometry.slots(); ++slot) {
    if (!h.SlotPresent(slot)) d.missing_slots.push_back(slot);
  }
  return d;
}

namespace {

// Runs fn(i) for i in [0, n) on up to `threads` threads, each taking the next index.
void ParallelFor(size_t n, int threads, const std::function<void(size_t)>& fn) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const size_t workers = std::min<size_t>(static_cast<size_t>(threads), n);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) fn(i);
  };
  std::vector<std::thread> pool;
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(work);
  work();  // the calling thread is one of the workers
  for (std::thread& t : pool) t.join();
}

}  // namespace

absl::Status KvCodec::DecodeChunksInto(std::span<const absl::string_view> chunks,
                                       const DecodeOptions& options,
                                       std::span<const std::span<float>> outs, int threads,
                                       std::vector<absl::Status>* statuses) const {
  if (outs.size() != chunks.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("DecodeChunksInto: ", chunks.size(), " chunks but ", outs.size(), " outputs"));
  }
  std::vector<absl::Status> st(chunks.size());
  ParallelFor(chunks.size(), threads,
              [&](size_t i) { st[i] = DecodeInto(chunks[i], options, outs[i]); });
  absl::Status first;
  for (const absl::Status& s : st) {
    if (!s.ok()) {
      first = s;
      break;
    }
  }
  if (statuses) *statuses = std::move(st);
  return first;
}

absl::StatusOr<std::vector<DecodedChunk>> KvCodec::DecodeChunks(
    std::span<const absl::string_view> chunks, const DecodeOptions& options, int threads) const {
  std::vector<absl::StatusOr<DecodedChunk>> decoded(chunks.size());
  ParallelFor(chunks.size(), threads, [&](size_t i) { decoded[i] = Decode(chunks[i], options); });
  std::vector<DecodedChunk> out;
  out.reserve(chunks.size());
  for (auto& d : decoded) {
    if (!d.ok()) return d.status();
    out.push_back(*std::move(d));
  }
  return out;
}

}  // namespace ctx::codec
