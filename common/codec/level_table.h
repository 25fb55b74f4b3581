// Default level tables (bins per K/V layer), from the sensitivity measured on the bundled
// 6-layer tiny-llama (shared reference kv-anchors.md §2-§3: tables OA..OE protect the deep K
// layers, which are both the most sensitive and the cheapest; V barely matters except layer 5).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/codec/profile.h"

namespace ctx::codec {

// Levels, best quality first. For 6 layers (measured on tiny-llama, static tables, 2048 tokens,
// bits/element all-in, KL nats/token):
//   0 "U32"   all 32 bins                   4.02 bits  KL 0.0024
//   1 "OA"    K 8 12 16 32 32 32 | V 12 8 8 8 8 16    2.66  KL 0.0039
//   2 "OB"    K 6 8 16 32 32 32  | V 8 6 6 6 6 12     2.29  KL 0.0064
//   3 "OC-r0" K - 6 12 16 32 32  | V - 6 6 6 6 12     1.82  KL 0.0078   (layer 0 not sent)
//   4 "OD-r0" K - 6 12 16 32 32  | V - 4 6 6 6 8      1.69  KL 0.0102   (layer 0 not sent)
//   5 "OE-r0" K - 6 12 16 16 32  | V - 4 4 4 4 8      1.39  KL 0.0182   (layer 0 not sent)
// The shipped tiny-llama profile (tools/calibrate --level0) replaces level 0 by "NL64r5": 64 bins
// + 5 refinement bits in every slot, 10.23 bits, KL < 1e-6, greedy answers identical to the
// text path on the 20 long documents (docs/kv-codec-measurements.md §2).
// Other layer counts: each layer takes the bins of the 6-layer table at the same relative
// depth (uncalibrated; run calibrate). `send_layer0` = true keeps layer 0 in the r0 levels
// (at the bins of the non-r0 parent table) for receivers that cannot recompute it.
std::vector<LevelSpec> DefaultLevels(int layers, bool send_layer0 = false);

// Index of the default level in DefaultLevels: the smallest one measured at KL <= 0.01 ("OC-r0",
// or "OB" when layer 0 must be sent).
int DefaultLevelIndex(bool send_layer0 = false);

// "K0 K1 ..|V0 V1 .." (bins per layer, 0 = not sent) -> LevelSpec named `name`; a bins entry
// "B+r" adds r refinement bits to that slot (e.g. "128+3"). InvalidArgument on a malformed
// text or a layer count other than `layers` (bins/bits ranges are checked by the encoder and
// ValidateProfile). The tools' --level0 / --levels / --extra_levels syntax.
absl::StatusOr<LevelSpec> ParseLevelBins(absl::string_view name, absl::string_view text,
                                         int layers);

}  // namespace ctx::codec
