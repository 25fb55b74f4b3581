// Baselines in the same container, for side-by-side numbers (cachegen.md §3, kv-anchors.md §2):
//   raw fp16  : every value as IEEE binary16 (16 bits/element);
//   int8      : CacheGen's "quantization baseline": per-(layer, token) fp16 scale and
//               255-level symmetric symbols (bins = 256, MAX = 127), one byte each
//               (8 + 16/C bits/element).
// Both carry every slot. KvCodec::Decode decodes them; the payload decoders are exposed for it.
#pragma once

#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "common/codec/wire_format.h"

namespace ctx::codec {

absl::StatusOr<std::string> EncodeRawF16(const KvChunkView& chunk, KvDType dtype = KvDType::kF16);
absl::StatusOr<std::string> EncodeInt8(const KvChunkView& chunk, KvDType dtype = KvDType::kF16);

// Payload decoders: `out` holds layers*2*T*C floats and is fully written (absent slots = 0).
absl::Status DecodeRawF16Payload(const ChunkHeader& header, absl::string_view payload,
                                 std::span<float> out);
absl::Status DecodeInt8Payload(const ChunkHeader& header, absl::string_view payload,
                               std::span<float> out);

}  // namespace ctx::codec
