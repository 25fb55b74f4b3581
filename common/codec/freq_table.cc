#include "common/codec/freq_table.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace ctx::codec {

void NormalizeFrequencies(std::span<const uint64_t> counts, std::span<uint16_t> freqs) {
  const size_t a = freqs.size();
  // Scale huge counts down so that spare * count fits in 64 bits (spare < M <= 2^12).
  uint64_t raw_total = 0;
  for (uint64_t c : counts) raw_total += c;
  const int shift = std::bit_width(raw_total) > 50 ? std::bit_width(raw_total) - 50 : 0;
  uint64_t total = 0;
  for (uint64_t c : counts) total += c >> shift;
  const uint64_t spare = kProbScale - a;  // what is left after giving everyone 1
  uint64_t sum = 0;
  size_t argmax = 0;
  for (size_t s = 0; s < a; ++s) {
    const uint64_t extra = total ? spare * (counts[s] >> shift) / total : spare / a;
    freqs[s] = static_cast<uint16_t>(1 + extra);
    sum += freqs[s];
    if (counts[s] > counts[argmax]) argmax = s;
  }
  freqs[argmax] = static_cast<uint16_t>(freqs[argmax] + (kProbScale - sum));
}

void WriteFreqTable(std::span<const uint16_t> freqs, ByteWriter* w) {
  for (uint16_t f : freqs) w->VarU32(f - 1u);
}

size_t FreqTableBytes(std::span<const uint16_t> freqs) {
  size_t n = 0;
  for (uint16_t f : freqs) n += (f - 1u) < 0x80 ? 1 : 2;  // f <= M <= 2^12 < 2^14
  return n;
}

absl::Status ReadFreqTable(ByteReader* r, std::span<uint16_t> freqs) {
  uint32_t sum = 0;
  for (uint16_t& f : freqs) {
    const uint32_t v = r->VarU32();
    if (!r->ok() || v >= kProbScale) return absl::DataLossError("frequency table truncated or bad");
    f = static_cast<uint16_t>(v + 1);
    sum += f;
  }
  if (sum != kProbScale) return absl::DataLossError("frequency table does not sum to 2^kProbBits");
  return absl::OkStatus();
}

}  // namespace ctx::codec
