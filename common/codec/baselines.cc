#include "common/codec/baselines.h"

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "common/codec/byte_io.h"
#include "common/codec/quantizer.h"
#include "common/tensor/dtype.h"

namespace ctx::codec {

namespace {

constexpr int kInt8Bins = 256;  // MAX = 127, symbols 0..254

ChunkHeader BaselineHeader(const KvChunkView& chunk, EncodingKind kind, KvDType dtype) {
  ChunkHeader h;
  h.kind = kind;
  h.level = kNoLevel;
  h.dtype = dtype;
  h.fingerprint = chunk.fingerprint;
  h.geometry = chunk.geometry;
  h.token_begin = chunk.token_begin;
  h.token_count = chunk.token_count;
  h.key_mask = h.value_mask = AllLayersMask(chunk.geometry.layers);
  return h;
}

}  // namespace

absl::StatusOr<std::string> EncodeRawF16(const KvChunkView& chunk, KvDType dtype) {
  if (absl::Status s = ValidateChunkView(chunk); !s.ok()) return s;
  std::string values(chunk.NumElements() * 2, '\0');
  uint8_t* p = reinterpret_cast<uint8_t*>(values.data());
  for (float x : chunk.data) {
    const uint16_t h = tensor::FloatToHalf(x);
    *p++ = static_cast<uint8_t>(h);
    *p++ = static_cast<uint8_t>(h >> 8);
  }
  std::string payload;
  WriteSections({values}, &payload);
  std::string out;
  WriteChunk(BaselineHeader(chunk, EncodingKind::kRawF16, dtype), payload, &out);
  return out;
}

absl::StatusOr<std::string> EncodeInt8(const KvChunkView& chunk, KvDType dtype) {
  if (absl::Status s = ValidateChunkView(chunk); !s.ok()) return s;
  const int c = chunk.geometry.channels();
  const size_t rows = chunk.NumElements() / c;
  std::string scales, symbols(chunk.NumElements(), '\0');
  ByteWriter sw(&scales);
  uint8_t* q = reinterpret_cast<uint8_t*>(symbols.data());
  for (size_t r = 0; r < rows; ++r) {
    const float* row = chunk.data.data() + r * c;
    uint16_t scale;
    if (absl::Status s = RowScale(row, c, &scale); !s.ok()) return s;
    QuantizeRow(row, c, MaxQ(kInt8Bins), scale, q + r * c);
    sw.U16(scale);
  }
  std::string payload;
  WriteSections({scales, symbols}, &payload);
  std::string out;
  WriteChunk(BaselineHeader(chunk, EncodingKind::kInt8, dtype), payload, &out);
  return out;
}

absl::Status DecodeRawF16Payload(const ChunkHeader& h, absl::string_view payload,
                                 std::span<float> out) {
  auto sections = ReadSections(payload, 1);
  if (!sections.ok()) return sections.status();
  const size_t per_slot = static_cast<size_t>(h.token_count) * h.geometry.channels();
  const absl::string_view values = (*sections)[0];
  if (values.size() != per_slot * 2 * h.SlotsPresent()) {
    return absl::DataLossError("raw fp16 chunk: value section has the wrong size");
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(values.data());
  for (int slot = 0; slot < h.geometry.slots(); ++slot) {
    float* dst = out.data() + slot * per_slot;
    if (!h.SlotPresent(slot)) {
      std::fill(dst, dst + per_slot, 0.f);
      continue;
    }
    for (size_t i = 0; i < per_slot; ++i, p += 2) {
      dst[i] = tensor::HalfToFloat(static_cast<uint16_t>(p[0] | p[1] << 8));
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeInt8Payload(const ChunkHeader& h, absl::string_view payload,
                               std::span<float> out) {
  auto sections = ReadSections(payload, 2);
  if (!sections.ok()) return sections.status();
  const int c = h.geometry.channels();
  const size_t t = h.token_count;
  const size_t present = static_cast<size_t>(h.SlotsPresent());
  const absl::string_view scales = (*sections)[0], symbols = (*sections)[1];
  if (scales.size() != present * t * 2 || symbols.size() != present * t * c) {
    return absl::DataLossError("int8 chunk: section sizes do not match the geometry");
  }
  const uint8_t* sp = reinterpret_cast<const uint8_t*>(scales.data());
  const uint8_t* q = reinterpret_cast<const uint8_t*>(symbols.data());
  const int max_q = MaxQ(kInt8Bins);
  for (int slot = 0; slot < h.geometry.slots(); ++slot) {
    float* dst = out.data() + slot * t * c;
    if (!h.SlotPresent(slot)) {
      std::fill(dst, dst + t * c, 0.f);
      continue;
    }
    for (size_t r = 0; r < t; ++r, sp += 2, q += c, dst += c) {
      for (int i = 0; i < c; ++i) {
        if (q[i] > 2 * max_q) return absl::DataLossError("int8 chunk: symbol out of range");
      }
      const uint16_t scale = static_cast<uint16_t>(sp[0] | sp[1] << 8);
      if ((scale & 0x7c00) == 0x7c00) return absl::DataLossError("int8 chunk: scale is inf/NaN");
      DequantizeRow(q, c, max_q, scale, dst);
    }
  }
  return absl::OkStatus();
}

}  // namespace ctx::codec
