// Quantizer variants measured side by side with the codec's, outside the codec (kv-anchors.md
// §2 "method prefixes"; issue 4 asks to measure per-channel key scaling and CacheGen's
// paper-only delta-to-anchor coding, and a CacheGen-recipe baseline):
//
//   tok  CacheGen's per-(layer, token) symmetric quantizer for K and V (= the codec's).
//   kch  K scaled per (layer, channel) over the chunk (one fp16 scale per channel and chunk),
//        V per token.
//   dL   K delta-to-anchor: groups of 10 tokens restarting at each chunk; the anchor is
//        quantized per token at the slot's bins, the other 9 code d = x - x̂_anchor (closed
//        loop) per token at the same bins; V per token.
//
// Size = ideal static-table coding: the cross-entropy of the symbols under per-(slot, row
// kind, channel) tables counted on calibration chunks (add-one smoothed; row kind separates
// anchors from deltas), plus side information (fp16 scales: 16 bits per row, or per channel
// and chunk for kch). An rANS coder with the same static tables lands within ~0.01 bits of it
// (the codec's measured bits vs these for "tok" are printed side by side).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/codec/kv_chunk.h"
#include "common/codec/profile.h"
#include "tools/kvquality/kv_eval.h"

namespace ctx::kveval {

enum class QuantMethod { kPerToken, kKeyPerChannel, kKeyDeltaAnchor };

absl::StatusOr<QuantMethod> ParseQuantMethod(const std::string& name);  // "tok" | "kch" | "dL"

// CacheGen's level-table shape on 6 layers (kv-anchors §2: L0 all 32; L1 K 32 32 16 16 16 16 |
// V 32 16x5; L2 16 16 12x4 | 16 8x5; L3 12 12 8x4 | 8 6x5; L4 8 8 6x4 | 6 4x5), named CG-L0..4.
std::vector<codec::LevelSpec> CacheGenLevels();

class MethodQuantizer {
 public:
  MethodQuantizer(QuantMethod method, codec::LevelSpec bins, codec::KvGeometry geometry);

  // Calibration: counts the symbols of one chunk into the static tables.
  absl::Status AddToTables(const codec::KvChunkView& chunk);
  // Quantizes + dequantizes one chunk; encoded_bytes = (cross-entropy + side bits) / 8.
  absl::StatusOr<Degraded> Degrade(const codec::KvChunkView& chunk) const;

 private:
  struct Quantized {
    std::vector<float> kv;                      // dequantized, chunk layout
    std::vector<std::vector<uint8_t>> symbols;  // [slot][T*C] (empty: slot not sent)
    std::vector<std::vector<uint8_t>> kinds;    // [slot][T]: 0 = plain/anchor row, 1 = delta row
    double side_bits = 0;
  };
  absl::StatusOr<Quantized> Quantize(const codec::KvChunkView& chunk) const;

  QuantMethod method_;
  codec::LevelSpec bins_;
  codec::KvGeometry geometry_;
  // (slot, kind) -> [C][A] symbol counts.
  std::map<std::pair<int, int>, std::vector<uint64_t>> hist_;
};

}  // namespace ctx::kveval
