#include "services/inference/kv_import.h"

#include <chrono>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/codec/wire_format.h"

namespace ctx::inference {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Codec errors keep their meaning for the caller: damaged bytes are the sender's fault.
absl::Status ChunkError(const absl::Status& s, int a, int b) {
  const std::string where = absl::StrCat("KV chunk for tokens [", a, ", ", b, "): ");
  if (s.code() == absl::StatusCode::kDataLoss) {
    return absl::InvalidArgumentError(absl::StrCat(where, "corrupt or truncated: ", s.message()));
  }
  return absl::Status(s.code(), absl::StrCat(where, s.message()));
}

}  // namespace

absl::StatusOr<std::optional<tensor::DType>> RawKvDType(ctxstream::v1::DType d) {
  switch (d) {
    case ctxstream::v1::DTYPE_UNSPECIFIED:
      return std::nullopt;
    case ctxstream::v1::DTYPE_F32:
      return tensor::DType::kF32;
    case ctxstream::v1::DTYPE_F16:
      return tensor::DType::kF16;
    case ctxstream::v1::DTYPE_BF16:
      return tensor::DType::kBF16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown raw KV dtype ", static_cast<int>(d), " (F32, F16 or BF16)"));
  }
}

codec::KvGeometry CodecGeometry(const model::Model& model) {
  const model::LlamaConfig& c = model.config();
  return codec::KvGeometry{c.num_layers, c.num_kv_heads, c.head_dim};
}

codec::ModelFingerprint CodecFingerprint(const model::Model& model) {
  return model.fingerprint().bytes;
}

absl::Status KvImporter::Import(const rpc::KvChunk& chunk, int a, std::span<const int32_t> tokens,
                                model::KvCache& cache, Stats* stats,
                                ctxstream::v1::DType raw_dtype) const {
  const auto t0 = std::chrono::steady_clock::now();
  const int T = static_cast<int>(tokens.size());
  const int b = a + T;
  if (cache.length() != a) {
    return absl::InternalError(
        absl::StrCat("KV import at ", a, " but the cache holds ", cache.length(), " tokens"));
  }
  if (chunk.ref.token_begin() != static_cast<uint32_t>(a) ||
      chunk.ref.token_end() != static_cast<uint32_t>(b)) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV chunk covers tokens [", chunk.ref.token_begin(), ", ",
                     chunk.ref.token_end(), ") but the next expected range is [", a, ", ", b, ")"));
  }
  const codec::KvGeometry geometry = CodecGeometry(model);
  const size_t elements = static_cast<size_t>(geometry.slots()) * T * geometry.channels();
  const std::string& bytes = chunk.bytes;
  absl::StatusOr<std::optional<tensor::DType>> declared = RawKvDType(raw_dtype);
  if (!declared.ok()) return ChunkError(declared.status(), a, b);
  const size_t declared_bytes =
      declared->has_value() ? elements * tensor::DTypeSize(**declared) : 0;
  // A codec container starts with its magic; declared raw bytes of exactly the right size are
  // tensor bytes even if their first element happens to spell it.
  const bool container = bytes.size() >= 4 && std::memcmp(bytes.data(), "CTXK", 4) == 0 &&
                         !(declared->has_value() && bytes.size() == declared_bytes);

  switch (chunk.encoding) {
    case ctxstream::v1::KV_ENCODING_RAW:
    case ctxstream::v1::KV_ENCODING_QUANT8:
    case ctxstream::v1::KV_ENCODING_CACHEGEN:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("KV chunk for tokens [", a, ", ", b,
                                                     "): unknown encoding ",
                                                     static_cast<int>(chunk.encoding)));
  }

  if (chunk.encoding == ctxstream::v1::KV_ENCODING_RAW && !container) {
    // Plain tensor bytes in KvCache's chunk layout.
    tensor::DType dtype;
    if (declared->has_value()) {
      dtype = **declared;
      if (bytes.size() != declared_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "RAW KV chunk for tokens [", a, ", ", b, ") has ", bytes.size(), " bytes; declared ",
            tensor::DTypeName(dtype), " for this model's geometry needs ", declared_bytes));
      }
    } else if (bytes.size() == elements * 4) {
      dtype = tensor::DType::kF32;
    } else if (bytes.size() == elements * 2) {
      dtype = tensor::DType::kF16;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("RAW KV chunk for tokens [", a, ", ", b, ") has ", bytes.size(),
                       " bytes; this model's geometry needs ", elements * 2, " (F16 or BF16) or ",
                       elements * 4, " (F32)"));
    }
    if (absl::Status s =
            cache.Import(a, b, dtype,
                         std::span<const std::byte>(
                             reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
        !s.ok()) {
      return ChunkError(s, a, b);
    }
    if (stats) {
      stats->decode_seconds += SecondsSince(t0);
      stats->output_bytes += elements * 4;
    }
    return absl::OkStatus();
  }

  // A codec container: check identity first so that a wrong model is reported as such.
  absl::StatusOr<codec::ParsedChunk> parsed = codec::ParseChunk(bytes);
  if (!parsed.ok()) return ChunkError(parsed.status(), a, b);
  const codec::ChunkHeader& h = parsed->header;
  if (h.fingerprint != CodecFingerprint(model)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "KV chunk for tokens [", a, ", ", b, ") was made by another model (fingerprint mismatch)"));
  }
  if (!(h.geometry == geometry)) {
    return absl::FailedPreconditionError(
        absl::StrCat("KV chunk for tokens [", a, ", ", b, ") has geometry ", h.geometry.layers, "x",
                     h.geometry.kv_heads, "x", h.geometry.head_dim, ", the model's is ",
                     geometry.layers, "x", geometry.kv_heads, "x", geometry.head_dim));
  }
  if (h.token_begin != static_cast<uint64_t>(a) || h.token_count != static_cast<uint32_t>(T)) {
    return absl::InvalidArgumentError(absl::StrCat("KV chunk header covers tokens [", h.token_begin,
                                                   ", ", h.token_begin + h.token_count,
                                                   "), expected [", a, ", ", b, ")"));
  }
  if (h.profile_hash != 0 && h.profile_hash != codec.profile().TablesHash()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "KV chunk for tokens [", a, ", ", b,
        ") is coded with codec profile tables this node does not have (--codec_profile)"));
  }
  std::vector<float> kv(elements);
  codec::DecodeOptions options;
  options.expected_fingerprint = CodecFingerprint(model);
  options.expected_geometry = geometry;
  if (absl::Status s = codec.DecodeInto(bytes, options, kv, nullptr); !s.ok()) {
    return ChunkError(s, a, b);
  }
  for (int slot = 0; slot < geometry.slots(); ++slot) {
    if (!h.SlotPresent(slot) && slot >= 2) {
      return absl::InvalidArgumentError(absl::StrCat("KV chunk for tokens [", a, ", ", b,
                                                     ") does not carry layer ", slot / 2,
                                                     " (only layer 0 can be recomputed)"));
    }
  }
  if (absl::Status s =
          cache.Import(a, b, tensor::DType::kF32,
                       std::span<const std::byte>(reinterpret_cast<const std::byte*>(kv.data()),
                                                  kv.size() * sizeof(float)));
      !s.ok()) {
    return ChunkError(s, a, b);
  }
  const bool k0 = h.SlotPresent(0), v0 = h.SlotPresent(1);
  if (!k0 || !v0) {
    // Layer 0 depends only on token ids and positions: rebuild what was not sent.
    const int C = geometry.channels();
    std::vector<float> k(static_cast<size_t>(T) * C), v(k.size());
    if (absl::Status s = layer0.Compute(tokens, a, k.data(), C, v.data(), C); !s.ok()) return s;
    if (!k0) std::copy(k.begin(), k.end(), cache.keys(0) + static_cast<size_t>(a) * C);
    if (!v0) std::copy(v.begin(), v.end(), cache.values(0) + static_cast<size_t>(a) * C);
    if (stats) stats->recomputed_layer0 = true;
  }
  if (stats) {
    stats->decode_seconds += SecondsSince(t0);
    stats->output_bytes += elements * 4;
  }
  return absl::OkStatus();
}

}  // namespace ctx::inference
