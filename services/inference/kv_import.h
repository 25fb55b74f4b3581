// Writes one received KV chunk (RAW tensor bytes, or a codec container: raw fp16, 8-bit
// baseline or CacheGen) into a request's KvCache at its token positions, recomputing layer 0
// from the token ids when the chunk's level does not send it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "absl/status/status.h"
#include "common/codec/codec.h"
#include "common/model/kv_cache.h"
#include "common/model/layer0_kv.h"
#include "common/model/model.h"
#include "common/rpc/kv_parts.h"
#include "common/tensor/dtype.h"
#include "ctxstream/v1/common.pb.h"

namespace ctx::inference {

struct KvImporter {
  const model::Model& model;
  const codec::KvCodec& codec;  // decodes containers; its profile may be table-less
  const model::Layer0KvComputer& layer0;

  struct Stats {
    double decode_seconds = 0;  // codec decode + import + layer-0 recompute
    uint64_t output_bytes = 0;  // raw fp32 KV bytes produced
    bool recomputed_layer0 = false;
  };

  // Imports `chunk` as KV of tokens [a, a + tokens.size()) (cache.length() must be a).
  // RAW bytes without a codec header are tensor bytes in the chunk layout of KvCache, of
  // element type `raw_dtype` (the sender's declaration: ContextSegment.kv_dtype,
  // PrefillRequest.prefix_dtype); DTYPE_UNSPECIFIED infers it from the size (F32 if 4
  // bytes/element, else F16; BF16 cannot be told from F16 and must be declared). Errors:
  // InvalidArgument (corrupt/truncated bytes, a size that does not match the declared dtype,
  // wrong token range, unknown encoding or dtype), FailedPrecondition (another model's
  // fingerprint or geometry, a chunk needing codec profile tables this node does not have).
  absl::Status Import(const rpc::KvChunk& chunk, int a, std::span<const int32_t> tokens,
                      model::KvCache& cache, Stats* stats,
                      ctxstream::v1::DType raw_dtype = ctxstream::v1::DTYPE_UNSPECIFIED) const;
};

// The tensor dtype a declared raw KV dtype names (DTYPE_UNSPECIFIED -> nullopt = infer from
// the size); InvalidArgument for values outside the enum.
absl::StatusOr<std::optional<tensor::DType>> RawKvDType(ctxstream::v1::DType d);

// The codec's view of the model's KV geometry and fingerprint.
codec::KvGeometry CodecGeometry(const model::Model& model);
codec::ModelFingerprint CodecFingerprint(const model::Model& model);

}  // namespace ctx::inference
