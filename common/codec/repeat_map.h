// The chunk's repeat map: for each token row, the last EARLIER row of the same chunk with the
// same token id (or none). The rANS kind codes a repeated row's symbols conditioned on that
// row's symbols in the same channel (repeat contexts, docs/kv-wire-format.md §7): a token's
// K/V at two positions of a chunk differ mostly by position, so the symbols largely repeat.
//
// On the wire (section 5 of a rans chunk, only when a slot uses repeat contexts): T LEB128
// varints d_t, d_t = 0 for "no earlier row", else the row t - d_t (1 <= d_t <= t). The map,
// not the ids, is carried: it is all the decoder needs, it is cheaper (~1.3 bytes per row vs
// ~2 for the ids) and the chunk stays self-contained (it cannot be decoded against wrong ids).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ctx::codec {

inline constexpr int32_t kNoRepeat = -1;

// rows[t] = the largest r < t with ids[r] == ids[t], or kNoRepeat.
std::vector<int32_t> RepeatRows(std::span<const int32_t> ids);

// Appends the wire form of `rows` (as RepeatRows returns) to out.
void WriteRepeatMap(std::span<const int32_t> rows, std::string* out);
// Parses exactly `tokens` entries from `bytes` (which must be consumed exactly) into rows
// (kNoRepeat or an earlier row). DataLoss on anything else.
absl::Status ReadRepeatMap(absl::string_view bytes, size_t tokens, std::vector<int32_t>* rows);

}  // namespace ctx::codec
