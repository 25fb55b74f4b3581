// Interleaved rANS decoder, the mirror of rans_encoder.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ctx::codec {

// Decode-side form of a set of tables with a common alphabet:
//   lut[t * M + slot] = the symbol whose [start, start+freq) contains slot   (M = 2^kProbBits)
//   sym[t * alphabet + s] = freq | start << 16
struct RansDecodeTables {
  int alphabet = 0;
  int count = 0;
  std::vector<uint8_t> lut;
  std::vector<uint32_t> sym;

  // freqs: count x alphabet frequencies, each table summing to 2^kProbBits.
  static RansDecodeTables Build(std::span<const uint16_t> freqs, int alphabet);
};

// Decodes rows x cols symbols into `symbols` (column c uses table c * table_stride).
// Never reads outside `in`; DataLossError if the stream is short, overlong, or does not end in
// the encoder's initial state (which catches nearly every corruption).
absl::Status RansDecode(absl::string_view in, size_t rows, int cols, const RansDecodeTables& t,
                        int table_stride, uint8_t* symbols);

// Same, fused with dequantization: values[r * cols + c] = (s - max_q) * row_step[r].
absl::Status RansDecodeDequantize(absl::string_view in, size_t rows, int cols,
                                  const RansDecodeTables& t, int table_stride, int max_q,
                                  const float* row_step, float* values);

}  // namespace ctx::codec
