// KvCacheCore: the kvcache service's logic without gRPC server plumbing (the handlers in
// kvcache_service.cc are thin reactors over it). Every method is synchronous and
// thread-safe; the service runs them on its worker pools.
//
// Storage layout (common/store):
//   chunk blob   BlobKey{h_i, encoding = KvEncoding number, level}   (level 0 for baselines)
//                h_i = ComputeChunkHashes(tokens, chunk_tokens, model fingerprint, tenant)
//                (the trailing partial chunk is included, so a context is stored entirely)
//                Blob bytes are codec containers (docs/kv-wire-format.md) for all three
//                encodings: CACHEGEN at a level, RAW = the codec's raw-fp16 container, QUANT8 =
//                the codec's int8 baseline; ctx::codec::KvCodec::Decode reads any of them.
//   manifest     the serialized ctxstream.v1.Manifest, written LAST (the commit point).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/codec/codec.h"
#include "common/store/chunk_store.h"
#include "ctxstream/v1/inference.grpc.pb.h"
#include "ctxstream/v1/kvcache.pb.h"
#include "services/kvcache/ingest_cancellation.h"

namespace ctx::kvcache {

struct KvCacheOptions {
  std::string inference_address;  // host:port of an inference replica (Prefill, GetModelInfo)
  uint32_t chunk_tokens = 256;    // default when IngestRequest.chunk_tokens == 0
  std::string store_backend;      // "memory" | "disk" | "redis" (metric label)
  double prefill_deadline_seconds = 600;
};

// Bytes of one requested chunk encoding, read from the store.
struct ChunkBlob {
  ctxstream::v1::ChunkRef ref;
  ctxstream::v1::KvEncoding encoding = ctxstream::v1::KV_ENCODING_UNSPECIFIED;
  int32_t level = -1;  // -1 for baselines
  std::string bytes;
  double read_seconds = 0;
};

class KvCacheCore {
 public:
  // `profile`: the codec profile (nullopt: the default level table without static tables,
  // created at the first Ingest from the model's fingerprint and geometry).
  KvCacheCore(std::unique_ptr<store::ChunkStore> store, std::optional<codec::CodecProfile> profile,
              KvCacheOptions options);

  // Runs a whole ingest; `on_progress` gets one event per chunk and the final committed one.
  // With `cancel`, a Cancel() stops it before the next chunk (CANCELLED, nothing committed;
  // chunks already stored stay, content-addressed, for a later ingest to reuse).
  absl::Status Ingest(const ctxstream::v1::IngestRequest& request,
                      const std::function<void(const ctxstream::v1::IngestProgress&)>& on_progress,
                      IngestCancellation* cancel = nullptr);

  // NOT_FOUND when the tenant has no such context (another tenant's context ids are not
  // visible: manifests are keyed by tenant).
  absl::StatusOr<ctxstream::v1::Manifest> GetManifest(const std::string& tenant,
                                                      const std::string& context_id);

  // The stored bytes of `request`'s chunk, which must be listed in `manifest` at that
  // encoding/level. The blob key comes from the manifest, never from the request.
  absl::StatusOr<ChunkBlob> ReadChunk(const ctxstream::v1::Manifest& manifest,
                                      const ctxstream::v1::FetchRequest& request);

  absl::StatusOr<ctxstream::v1::DeleteContextResponse> DeleteContext(const std::string& tenant,
                                                                     const std::string& context_id);

  ctxstream::v1::CodecInfo GetCodecInfo();

  store::ChunkStore& store() { return *store_; }

 private:
  struct ModelInfo {
    codec::ModelFingerprint fingerprint{};
    codec::KvGeometry geometry;
  };
  absl::StatusOr<ModelInfo> GetModelInfo();
  absl::StatusOr<std::shared_ptr<const codec::KvCodec>> CodecFor(const ModelInfo& model);
  void PublishStoreStats();

  std::unique_ptr<store::ChunkStore> store_;
  std::optional<codec::CodecProfile> profile_;
  const KvCacheOptions options_;

  std::atomic<uint64_t> evictions_published_{0};  // store evictions already counted
  std::mutex mu_;                                 // guards the lazily created members below
  std::unique_ptr<ctxstream::v1::Inference::Stub> inference_;
  std::optional<ModelInfo> model_;
  std::shared_ptr<const codec::KvCodec> codec_;
};

// BlobKey.encoding values: the KvEncoding enum numbers.
store::BlobKey BlobKeyFor(const std::string& chunk_hash, ctxstream::v1::KvEncoding encoding,
                          int32_t level);

}  // namespace ctx::kvcache
