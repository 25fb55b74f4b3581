// CodecProfile: everything about a model that encoder and decoder share offline — the level
// tables (bins per K/V layer) and the static probability tables per (K/V, layer, channel) —
// plus per-level measurements filled by the calibrate tool. Stored as a versioned,
// checksummed binary file (SerializeProfile / ParseProfile); a chunk names the tables it used
// by TablesHash(), so it cannot be decoded against different tables by mistake.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/codec/kv_chunk.h"

namespace ctx::codec {

inline constexpr uint32_t kProfileMagic = 0x50585443;  // "CTXP"
// Version 2 added the refinement bits per (K|V, layer) of each level, version 3 the
// repeat-context tables (SlotTable::repeat_freqs); older files are rejected (re-run calibrate).
inline constexpr uint16_t kProfileVersion = 3;

// One compression level: bins per (K|V, layer); 0 = that slot is not sent (the receiver
// recomputes it, e.g. layer 0 from token ids and positions).
struct LevelSpec {
  std::string name;
  std::vector<uint16_t> key_bins;    // [layers]
  std::vector<uint16_t> value_bins;  // [layers]
  // Refinement bits per slot (quantizer.h, wire v3): each element also carries r raw bits that
  // place it in one of 2^r sub-bins of its bin. Empty = 0 everywhere; else [layers], 0..8, and
  // 0 where the slot is not sent.
  std::vector<uint8_t> key_refine;
  std::vector<uint8_t> value_refine;
  // Measured offline (NaN = not measured yet).
  double bits_per_element = NAN;  // all-in: payload + scales + side information
  double kl_nats = NAN;           // mean KL(full || degraded) per token
  double delta_ppl_pct = NAN;     // continuation perplexity change vs full KV, %
  double top1_agreement = NAN;    // greedy next-token agreement with full KV

  int Bins(int slot) const { return slot & 1 ? value_bins[slot / 2] : key_bins[slot / 2]; }
  int Refine(int slot) const {
    const std::vector<uint8_t>& r = slot & 1 ? value_refine : key_refine;
    return r.empty() ? 0 : r[slot / 2];
  }
};

// Static table for one (slot, bins): freqs[c * A + s], A = AlphabetSize(bins), each row of A
// sums to 2^kProbBits and is >= 1 everywhere.
struct SlotTable {
  int slot = 0;  // 2 * layer + (0 = K, 1 = V)
  int bins = 0;
  std::vector<uint16_t> freqs;
  // Repeat contexts (empty = none): repeat_freqs[q_rep * A + s], one table per symbol q_rep
  // the same channel had in the last earlier row of the chunk with the same token id, shared
  // by all channels of the slot (repeat_map.h, docs/kv-wire-format.md §7 table mode 3).
  std::vector<uint16_t> repeat_freqs;
};

struct CodecProfile {
  ModelFingerprint fingerprint{};
  KvGeometry geometry;
  int default_level = 0;
  std::vector<LevelSpec> levels;  // ordered best quality ... smallest
  std::vector<SlotTable> tables;  // may be empty: chunks then carry their own tables

  // XXH3-64 of geometry + tables (not the measurements); 0 when there are no tables.
  uint64_t TablesHash() const;
  const SlotTable* FindTable(int slot, int bins) const;
};

// Checks levels and tables against the geometry (bins valid, table sums, no duplicates).
absl::Status ValidateProfile(const CodecProfile& profile);

std::string SerializeProfile(const CodecProfile& profile);
// Bounds-checked; DataLossError on truncated/corrupted bytes, InvalidArgument on versions or
// contents this build does not accept.
absl::StatusOr<CodecProfile> ParseProfile(absl::string_view bytes);

// Accumulates symbol histograms from float KV chunks (the calibrate tool's inner loop) and
// builds a profile whose tables cover every (slot, bins) some level uses.
class ProfileBuilder {
 public:
  ProfileBuilder(ModelFingerprint fingerprint, KvGeometry geometry, std::vector<LevelSpec> levels,
                 int default_level = 0);
  // With chunk.token_ids, rows that repeat an earlier id of the chunk also count towards the
  // repeat-context tables (built only if some chunk had ids).
  absl::Status AddChunk(const KvChunkView& chunk);
  // Tables from the histograms (add-one smoothed; repeat contexts get kRepeatPriorCounts
  // pseudo-counts of the slot's order-0 distribution) and, per level, the in-sample
  // bits/element (cross-entropy under the built tables, with repeat contexts where they code
  // smaller, + 8-bit scale codes).
  CodecProfile Build() const;
  static constexpr double kRepeatPriorCounts = 16;
  uint64_t tokens() const { return tokens_; }

 private:
  ModelFingerprint fingerprint_;
  KvGeometry geometry_;
  std::vector<LevelSpec> levels_;
  int default_level_;
  struct Hist {
    std::vector<uint64_t> all;      // [C][A] every row
    std::vector<uint64_t> all_ids;  // [C][A] every row of the chunks with token ids
    std::vector<uint64_t> fresh;    // [C][A] rows without an earlier same-id row (with ids)
    std::vector<uint64_t> repeat;   // [A][A] (q_rep, q) of the other rows, pooled over channels
  };
  std::map<std::pair<int, int>, Hist> hist_;  // (slot, bins)
  uint64_t tokens_ = 0;
  uint64_t tokens_with_ids_ = 0;
};

}  // namespace ctx::codec
