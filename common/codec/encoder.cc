// KvCodec::Encode: CacheGen-style quantization (8-bit log-grid row scales), per-slot table
// choice, one interleaved rANS stream per chunk, optional raw refinement bits per element.
//
// Payload of an EncodingKind::kRans chunk (sections, docs/kv-wire-format.md §7):
//   0 slot directory : per present slot (slot order): u8 bins/2, u8 table mode, u8 refine bits
//   1 scales         : per present slot: u16 lo (fp16), u16 ratio_m, T u8 scale codes
//   2 chunk tables   : per present slot with mode 1: C tables, mode 2: 1 table (freq_table.h)
//   3 stream         : one rANS stream (rans_encoder.h), the present slots' blocks in slot order
//   4 refinement     : per present slot with r > 0: T*C r-bit fields, packed (quantizer.h)
//   5 repeat map     : with a mode-3 slot: per row, the earlier row with its token id
//                      (repeat_map.h)
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
#include "common/codec/repeat_map.h"
#include "common/codec/wire_format.h"

namespace ctx::codec {

namespace {

// cost[f] = SymbolCostBits(f) for f in [1, M]: no log2 per histogram entry.
const float* CostTable() {
  static const std::vector<float> table = [] {
    std::vector<float> t(kProbScale + 1, 0.f);
    for (uint32_t f = 1; f <= kProbScale; ++f) t[f] = static_cast<float>(SymbolCostBits(f));
    return t;
  }();
  return table.data();
}

// Bits to code histogram h[c][s] under frequencies f[c][s] (f_stride 0: one shared table).
double CrossEntropyBits(const std::vector<uint32_t>& h, const uint16_t* f, int channels, int a,
                        int f_stride) {
  const float* cost = CostTable();
  double bits = 0;
  for (int c = 0; c < channels; ++c) {
    const uint32_t* hc = h.data() + static_cast<size_t>(c) * a;
    const uint16_t* fc = f + c * f_stride * a;
    float row = 0;
    for (int s = 0; s < a; ++s) row += static_cast<float>(hc[s]) * cost[fc[s]];
    bits += row;
  }
  return bits;
}

// n * log2(n) for n in [0, max_n] (counts are at most T <= kMaxChunkTokens).
double NLog2N(uint32_t n) {
  static thread_local std::vector<double> table;
  if (n >= table.size()) {
    const size_t old = table.size();
    table.resize(std::max<size_t>(n + 1, 2 * old));
    for (size_t i = old; i < table.size(); ++i) {
      table[i] = i ? static_cast<double>(i) * std::log2(static_cast<double>(i)) : 0.0;
    }
  }
  return table[n];
}

// Lower bounds on what chunk tables can cost (no table codes data below its empirical
// entropy, and every table entry takes at least one byte): if the profile table is cheaper
// than both, the exact chunk-table costs need not be computed.
void ChunkTableLowerBounds(const std::vector<uint32_t>& hist, int channels, int a,
                           double* per_channel, double* shared) {
  double chan = 0;
  std::vector<uint64_t> pooled(a, 0);
  uint64_t total = 0;
  for (int c = 0; c < channels; ++c) {
    const uint32_t* h = hist.data() + static_cast<size_t>(c) * a;
    uint32_t n = 0;
    for (int s = 0; s < a; ++s) {
      n += h[s];
      chan -= NLog2N(h[s]);
      pooled[s] += h[s];
    }
    chan += NLog2N(n);
    total += n;
  }
  double pooled_bits = static_cast<double>(total) * std::log2(static_cast<double>(total));
  for (uint64_t n : pooled) {
    if (n) pooled_bits -= static_cast<double>(n) * std::log2(static_cast<double>(n));
  }
  *per_channel = chan + 8.0 * channels * a;
  *shared = pooled_bits + 8.0 * a;
}

// Bits repeat contexts save on one slot's symbols [T][C] (negative: they cost more): over the
// rows with an earlier same-id row, order-0 cost (table c) minus repeat cost (table C + q_rep);
// the other rows code alike in both modes. cost: [C + A][A] bits per symbol.
double RepeatSavingBits(const uint8_t* sym, size_t rows, int channels, int a, const float* cost,
                        const std::vector<int32_t>& rep) {
  const float* rep_cost = cost + static_cast<size_t>(channels) * a;
  double bits = 0;
  for (size_t t = 0; t < rows; ++t) {
    if (rep[t] == kNoRepeat) continue;
    const uint8_t* row = sym + t * channels;
    const uint8_t* prev = sym + static_cast<size_t>(rep[t]) * channels;
    float b = 0;
    for (int c = 0; c < channels; ++c) {
      b += cost[static_cast<size_t>(c) * a + row[c]] -
           rep_cost[static_cast<size_t>(prev[c]) * a + row[c]];
    }
    bits += b;
  }
  return bits;
}

// What the encoder decided for one present slot.
struct SlotCode {
  int slot = 0;
  int bins = 0;
  int refine = 0;
  TableMode mode = TableMode::kProfile;
  const RansEncSymbol* tables = nullptr;
  int table_stride = 1;
  std::vector<RansEncSymbol> own;  // chunk tables in encoder form
  size_t symbol_offset = 0;        // into the chunk's symbol buffer
};

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
      static_cast<int>(spec.value_bins.size()) != g.layers ||
      (!spec.key_refine.empty() && static_cast<int>(spec.key_refine.size()) != g.layers) ||
      (!spec.value_refine.empty() && static_cast<int>(spec.value_refine.size()) != g.layers)) {
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

  std::vector<SlotCode> codes;
  for (int slot = 0; slot < g.slots(); ++slot) {
    const int bins = spec.Bins(slot);
    if (bins == 0) continue;
    if (!ValidBins(bins)) return absl::InvalidArgumentError(absl::StrCat("invalid bins ", bins));
    const int refine = spec.Refine(slot);
    if (refine < 0 || refine > kMaxRefineBits) {
      return absl::InvalidArgumentError(absl::StrCat("invalid refinement bits ", refine));
    }
    (slot & 1 ? h.value_mask : h.key_mask) |= uint64_t{1} << (slot / 2);
    SlotCode sc;
    sc.slot = slot;
    sc.bins = bins;
    sc.refine = refine;
    sc.symbol_offset = codes.size() * per_slot;
    codes.push_back(std::move(sc));
  }
  if (codes.empty()) return absl::InvalidArgumentError("level sends no slot at all");

  // Repeat contexts need the token ids and at least one repeated id.
  std::vector<int32_t> rep_rows;
  bool any_repeat = false;
  if (!chunk.token_ids.empty()) {
    rep_rows = RepeatRows(chunk.token_ids);
    for (int32_t r : rep_rows) any_repeat |= r != kNoRepeat;
  }
  if (options.tables == TableChoice::kProfileRepeat && chunk.token_ids.empty()) {
    return absl::InvalidArgumentError("repeat contexts need the chunk's token ids");
  }
  double repeat_saving = 0;  // bits mode 3 saves over mode 0, over the slots that chose it

  std::string dir, scales, tables, stream, refine_bits, repeat_map;
  ByteWriter dir_w(&dir), table_w(&tables);
  static thread_local std::vector<uint8_t> symbols;  // reused: avoids page faults per call
  if (symbols.size() < codes.size() * per_slot) symbols.resize(codes.size() * per_slot);
  static thread_local std::vector<uint8_t> low;  // one slot's refinement indices
  std::vector<uint16_t> chan_freqs, shared_freqs;
  std::vector<uint32_t> hist;
  std::vector<uint64_t> shared_hist;
  bool used_profile = false;
  int chunk_table_slots = 0;
  scales.reserve(codes.size() * (4 + t_count));

  for (SlotCode& sc : codes) {
    const int slot = sc.slot, bins = sc.bins, a = AlphabetSize(bins);
    // Quantize: one scale code per token row, symbols [T][C]; histogram per channel.
    hist.assign(static_cast<size_t>(channels) * a, 0);
    uint8_t* sym = symbols.data() + sc.symbol_offset;
    if (sc.refine > 0 && low.size() < per_slot) low.resize(per_slot);
    if (absl::Status s = QuantizeSlot(chunk.data.data() + slot * per_slot, t_count, channels, bins,
                                      &scales, sym, hist.data(), sc.refine, low.data());
        !s.ok()) {
      return s;
    }
    if (sc.refine > 0) PackRefineBits(low.data(), per_slot, sc.refine, &refine_bits);

    // Candidate tables and their cost in bits (chunk tables pay for their own bytes).
    const PreparedSlotTable* prof = prepared_->Find(slot, bins);
    constexpr double kInf = std::numeric_limits<double>::infinity();
    double prof_bits = kInf, chan_bits = kInf, shared_bits = kInf, repeat_bits = kInf;
    if (prof) {
      double bits = 0;
      for (size_t i = 0; i < hist.size(); ++i) bits += static_cast<double>(hist[i]) * prof->cost[i];
      prof_bits = bits;
      const bool try_repeat =
          prof->repeat && (options.tables == TableChoice::kProfileRepeat ||
                           (options.tables == TableChoice::kAuto && any_repeat));
      if (try_repeat) {
        repeat_bits =
            prof_bits - RepeatSavingBits(sym, t_count, channels, a, prof->cost.data(), rep_rows);
      }
    }
    const double best_prof = std::min(prof_bits, repeat_bits);
    bool want_chunk = options.tables != TableChoice::kProfile;
    if (want_chunk && options.tables == TableChoice::kAuto && prof) {
      double chan_lb, shared_lb;
      ChunkTableLowerBounds(hist, channels, a, &chan_lb, &shared_lb);
      // Slack for float rounding in the exact costs: then the decision is the same.
      want_chunk = best_prof * (1 - 1e-6) > std::min(chan_lb, shared_lb);
    }
    if (want_chunk) {
      chan_freqs.resize(hist.size());
      std::vector<uint64_t> h64(a);
      for (int c = 0; c < channels; ++c) {
        std::copy(hist.begin() + static_cast<size_t>(c) * a,
                  hist.begin() + static_cast<size_t>(c + 1) * a, h64.begin());
        NormalizeFrequencies(
            h64, std::span<uint16_t>(chan_freqs.data() + static_cast<size_t>(c) * a, a));
      }
      chan_bits = CrossEntropyBits(hist, chan_freqs.data(), channels, a, 1) +
                  8.0 * FreqTableBytes(chan_freqs);
      shared_hist.assign(a, 0);
      for (size_t i = 0; i < hist.size(); ++i) shared_hist[i % a] += hist[i];
      shared_freqs.resize(a);
      NormalizeFrequencies(shared_hist, shared_freqs);
      shared_bits = CrossEntropyBits(hist, shared_freqs.data(), channels, a, 0) +
                    8.0 * FreqTableBytes(shared_freqs);
    }

    switch (options.tables) {
      case TableChoice::kProfile:
        if (!prof) {
          return absl::FailedPreconditionError(
              absl::StrCat("codec profile has no table for slot ", slot, " at ", bins, " bins"));
        }
        sc.mode = TableMode::kProfile;
        break;
      case TableChoice::kChunkPerChannel:
        sc.mode = TableMode::kChunkPerChannel;
        break;
      case TableChoice::kChunkShared:
        sc.mode = TableMode::kChunkShared;
        break;
      case TableChoice::kProfileRepeat:
        if (!prof || !prof->repeat) {
          return absl::FailedPreconditionError(absl::StrCat(
              "codec profile has no repeat tables for slot ", slot, " at ", bins, " bins"));
        }
        sc.mode = TableMode::kProfileRepeat;
        break;
      case TableChoice::kAuto:
      default:
        sc.mode = best_prof <= chan_bits && best_prof <= shared_bits
                      ? (repeat_bits < prof_bits ? TableMode::kProfileRepeat : TableMode::kProfile)
                  : chan_bits <= shared_bits ? TableMode::kChunkPerChannel
                                             : TableMode::kChunkShared;
    }
    if (sc.mode == TableMode::kProfile || sc.mode == TableMode::kProfileRepeat) {
      used_profile = true;
      sc.tables = prof->enc.data();
      if (sc.mode == TableMode::kProfileRepeat) repeat_saving += prof_bits - repeat_bits;
    } else if (sc.mode == TableMode::kChunkPerChannel) {
      ++chunk_table_slots;
      WriteFreqTable(chan_freqs, &table_w);
      sc.own = BuildEncodeSymbols(chan_freqs, a);
      sc.tables = sc.own.data();
    } else {
      ++chunk_table_slots;
      WriteFreqTable(shared_freqs, &table_w);
      sc.own = BuildEncodeSymbols(shared_freqs, a);
      sc.tables = sc.own.data();
      sc.table_stride = 0;
    }
  }
  // The repeat map costs its bytes once per chunk: if the slots' savings do not pay for it,
  // code them order-0 (same profile tables).
  bool use_repeat = false;
  for (const SlotCode& sc : codes) use_repeat |= sc.mode == TableMode::kProfileRepeat;
  if (use_repeat) {
    WriteRepeatMap(rep_rows, &repeat_map);
    if (options.tables == TableChoice::kAuto && repeat_saving <= 8.0 * repeat_map.size()) {
      for (SlotCode& sc : codes) {
        if (sc.mode == TableMode::kProfileRepeat) sc.mode = TableMode::kProfile;
      }
      repeat_map.clear();
      use_repeat = false;
    }
  }
  int repeat_slots = 0;
  for (const SlotCode& sc : codes) {
    dir_w.U8(static_cast<uint8_t>(sc.bins / 2));
    dir_w.U8(static_cast<uint8_t>(sc.mode));
    dir_w.U8(static_cast<uint8_t>(sc.refine));
    repeat_slots += sc.mode == TableMode::kProfileRepeat;
  }
  // One stream for the chunk: rANS is LIFO, so the last slot goes in first.
  RansEncoder enc(codes.size() * per_slot);
  for (size_t i = codes.size(); i-- > 0;) {
    const SlotCode& sc = codes[i];
    if (sc.mode == TableMode::kProfileRepeat) {
      enc.PutBlockRepeat(symbols.data() + sc.symbol_offset, t_count, channels, sc.tables,
                         AlphabetSize(sc.bins), rep_rows.data());
      continue;
    }
    enc.PutBlock(symbols.data() + sc.symbol_offset, t_count, channels, sc.tables, sc.table_stride,
                 AlphabetSize(sc.bins));
  }
  enc.Finish(&stream);
  h.profile_hash = used_profile ? tables_hash_ : 0;

  std::string payload;
  WriteSections({dir, scales, tables, stream, refine_bits, repeat_map}, &payload);
  std::string out;
  out.reserve(kChunkHeaderSize + payload.size());
  WriteChunk(h, payload, &out);
  if (stats) {
    // Header: fixed header + section directory + slot directory + the stream's lane states.
    stats->header_bytes = kChunkHeaderSize +
                          (payload.size() - dir.size() - scales.size() - tables.size() -
                           stream.size() - refine_bits.size() - repeat_map.size()) +
                          dir.size() + kRansHeaderBytes;
    stats->repeat_bytes = repeat_map.size();
    stats->slots_with_repeat = repeat_slots;
    stats->scale_bytes = scales.size();
    stats->table_bytes = tables.size();
    stats->stream_bytes = stream.size() - kRansHeaderBytes;
    stats->refine_bytes = refine_bits.size();
    stats->total_bytes = out.size();
    stats->slots_with_chunk_tables = chunk_table_slots;
  }
  return out;
}

}  // namespace ctx::codec
