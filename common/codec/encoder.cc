// KvCodec::Encode: CacheGen-style quantization, per-slot table choice, interleaved rANS.
//
// Payload of an EncodingKind::kRans chunk (sections, docs/kv-wire-format.md §4):
//   0 slot directory : per present slot (slot order): u8 bins/2, u8 table mode, u32 stream bytes
//   1 scales         : per present slot, T fp16 scales (u16)
//   2 chunk tables   : per present slot with mode 1: C tables, mode 2: 1 table (freq_table.h)
//   3 streams        : per present slot, its rANS stream (rans_encoder.h), concatenated
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/codec/byte_io.h"
#include "common/codec/codec.h"
#include "common/codec/freq_table.h"
#include "common/codec/level_table.h"
#include "common/codec/prepared_tables.h"
#include "common/codec/quantizer.h"
#include "common/codec/rans_encoder.h"

namespace ctx::codec {

namespace {

// Bits to code histogram h[c][s] under frequencies f[c][s] (f_stride 0: one shared table).
double CrossEntropyBits(const std::vector<uint64_t>& h, const uint16_t* f, int channels, int a,
                        int f_stride) {
  double bits = 0;
  for (int c = 0; c < channels; ++c) {
    for (int s = 0; s < a; ++s) {
      const uint64_t n = h[static_cast<size_t>(c) * a + s];
      if (n) bits += static_cast<double>(n) * SymbolCostBits(f[c * f_stride * a + s]);
    }
  }
  return bits;
}

}  // namespace

absl::StatusOr<std::string> KvCodec::Encode(const KvChunkView& chunk, int level,
                                            const EncodeOptions& options,
                                            EncodeStats* stats) const {
  if (level < 0 || level >= static_cast<int>(profile_->levels.size())) {
    return absl::InvalidArgumentError(absl::StrCat("level ", level, " not in the codec profile (",
                                                   profile_->levels.size(), " levels)"));
  }
  return EncodeImpl(chunk, profile_->levels[level], static_cast<uint8_t>(level), options, stats);
}

absl::StatusOr<std::string> KvCodec::EncodeWithBins(const KvChunkView& chunk, const LevelSpec& bins,
                                                    const EncodeOptions& options,
                                                    EncodeStats* stats) const {
  return EncodeImpl(chunk, bins, kNoLevel, options, stats);
}

absl::StatusOr<std::string> KvCodec::EncodeImpl(const KvChunkView& chunk, const LevelSpec& spec,
                                                uint8_t level, const EncodeOptions& options,
                                                EncodeStats* stats) const {
  if (absl::Status s = ValidateChunkView(chunk); !s.ok()) return s;
  const KvGeometry& g = chunk.geometry;
  if (!(g == profile_->geometry) || chunk.fingerprint != profile_->fingerprint) {
    return absl::InvalidArgumentError("KV chunk is not from this codec profile's model");
  }
  if (static_cast<int>(spec.key_bins.size()) != g.layers ||
      static_cast<int>(spec.value_bins.size()) != g.layers) {
    return absl::InvalidArgumentError("level table does not have one entry per layer");
  }
  const int channels = g.channels();
  const size_t t_count = chunk.token_count;
  const size_t per_slot = chunk.ElementsPerSlot();

  ChunkHeader h;
  h.kind = EncodingKind::kRans;
  h.level = level;
  h.dtype = options.dtype;
  h.fingerprint = chunk.fingerprint;
  h.geometry = g;
  h.token_begin = chunk.token_begin;
  h.token_count = chunk.token_count;

  std::string dir, scales, tables, streams;
  ByteWriter dir_w(&dir), scale_w(&scales), table_w(&tables);
  static thread_local std::vector<uint8_t> symbols;  // reused: avoids page faults per call
  if (symbols.size() < per_slot) symbols.resize(per_slot);
  std::vector<uint16_t> chan_freqs, shared_freqs;
  std::vector<uint64_t> hist, shared_hist;
  bool used_profile = false;
  int chunk_table_slots = 0;

  for (int slot = 0; slot < g.slots(); ++slot) {
    const int bins = spec.Bins(slot);
    if (bins == 0) continue;
    if (!ValidBins(bins)) return absl::InvalidArgumentError(absl::StrCat("invalid bins ", bins));
    (slot & 1 ? h.value_mask : h.key_mask) |= uint64_t{1} << (slot / 2);
    const int max_q = MaxQ(bins), a = AlphabetSize(bins);

    // Quantize: one fp16 scale per token row, symbols [T][C]; histogram per channel.
    hist.assign(static_cast<size_t>(channels) * a, 0);
    const float* base = chunk.data.data() + slot * per_slot;
    for (size_t t = 0; t < t_count; ++t) {
      uint16_t scale;
      if (absl::Status s = RowScale(base + t * channels, channels, &scale); !s.ok()) return s;
      uint8_t* q = symbols.data() + t * channels;
      QuantizeRow(base + t * channels, channels, max_q, scale, q);
      scale_w.U16(scale);
      for (int c = 0; c < channels; ++c) ++hist[static_cast<size_t>(c) * a + q[c]];
    }

    // Candidate tables and their cost in bits (chunk tables pay for their own bytes).
    const PreparedSlotTable* prof = prepared_->Find(slot, bins);
    constexpr double kInf = std::numeric_limits<double>::infinity();
    double prof_bits = kInf;
    if (prof) {
      prof_bits = 0;
      for (size_t i = 0; i < hist.size(); ++i) {
        if (hist[i]) prof_bits += static_cast<double>(hist[i]) * prof->cost[i];
      }
    }
    chan_freqs.resize(hist.size());
    for (int c = 0; c < channels; ++c) {
      NormalizeFrequencies(std::span<const uint64_t>(hist.data() + static_cast<size_t>(c) * a, a),
                           std::span<uint16_t>(chan_freqs.data() + static_cast<size_t>(c) * a, a));
    }
    const double chan_bits = CrossEntropyBits(hist, chan_freqs.data(), channels, a, 1) +
                             8.0 * FreqTableBytes(chan_freqs);
    shared_hist.assign(a, 0);
    for (size_t i = 0; i < hist.size(); ++i) shared_hist[i % a] += hist[i];
    shared_freqs.resize(a);
    NormalizeFrequencies(shared_hist, shared_freqs);
    const double shared_bits = CrossEntropyBits(hist, shared_freqs.data(), channels, a, 0) +
                               8.0 * FreqTableBytes(shared_freqs);

    TableMode mode;
    switch (options.tables) {
      case TableChoice::kProfile:
        if (!prof) {
          return absl::FailedPreconditionError(
              absl::StrCat("codec profile has no table for slot ", slot, " at ", bins, " bins"));
        }
        mode = TableMode::kProfile;
        break;
      case TableChoice::kChunkPerChannel:
        mode = TableMode::kChunkPerChannel;
        break;
      case TableChoice::kChunkShared:
        mode = TableMode::kChunkShared;
        break;
      case TableChoice::kAuto:
      default:
        mode = prof_bits <= chan_bits && prof_bits <= shared_bits ? TableMode::kProfile
               : chan_bits <= shared_bits                         ? TableMode::kChunkPerChannel
                                                                  : TableMode::kChunkShared;
    }

    const size_t stream_start = streams.size();
    if (mode == TableMode::kProfile) {
      used_profile = true;
      RansEncode(symbols.data(), t_count, channels, prof->enc.data(), 1, a, &streams);
    } else if (mode == TableMode::kChunkPerChannel) {
      ++chunk_table_slots;
      WriteFreqTable(chan_freqs, &table_w);
      const std::vector<RansSymbol> enc = BuildEncodeSymbols(chan_freqs, a);
      RansEncode(symbols.data(), t_count, channels, enc.data(), 1, a, &streams);
    } else {
      ++chunk_table_slots;
      WriteFreqTable(shared_freqs, &table_w);
      const std::vector<RansSymbol> enc = BuildEncodeSymbols(shared_freqs, a);
      RansEncode(symbols.data(), t_count, channels, enc.data(), 0, a, &streams);
    }
    dir_w.U8(static_cast<uint8_t>(bins / 2));
    dir_w.U8(static_cast<uint8_t>(mode));
    dir_w.U32(static_cast<uint32_t>(streams.size() - stream_start));
  }
  if (h.key_mask == 0 && h.value_mask == 0) {
    return absl::InvalidArgumentError("level sends no slot at all");
  }
  h.profile_hash = used_profile ? tables_hash_ : 0;

  std::string payload;
  WriteSections({dir, scales, tables, streams}, &payload);
  std::string out;
  out.reserve(kChunkHeaderSize + payload.size());
  WriteChunk(h, payload, &out);
  if (stats) {
    stats->header_bytes =
        kChunkHeaderSize +
        (payload.size() - dir.size() - scales.size() - tables.size() - streams.size()) + dir.size();
    stats->scale_bytes = scales.size();
    stats->table_bytes = tables.size();
    stats->stream_bytes = streams.size();
    stats->total_bytes = out.size();
    stats->slots_with_chunk_tables = chunk_table_slots;
  }
  return out;
}

}  // namespace ctx::codec
