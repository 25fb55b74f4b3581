#include "services/kvcache/kvcache_core.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/codec/baselines.h"
#include "common/codec/wire_format.h"
#include "common/obs/service_metrics.h"
#include "common/rpc/channel.h"
#include "common/rpc/kv_parts.h"
#include "common/rpc/status.h"
#include "common/store/chunk_key.h"
#include "common/tensor/dtype.h"
#include "grpcpp/client_context.h"

namespace ctx::kvcache {
namespace {

namespace pb = ctxstream::v1;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One encoding to produce for every chunk.
struct Target {
  pb::KvEncoding encoding;
  int32_t level;  // profile level for CACHEGEN, -1 for baselines
};

// Whether a stored blob can be reused as this target's encoding by the current build: it
// parses (magic, this wire version, checksum), names the target's level, was coded with that
// level's bins and refinement bits per slot (the profile hash covers only the tables: a
// recalibrated level 0, say, keeps the hash) and, when it uses profile tables, the tables this
// node's profile has. A blob written by an older format or profile is re-encoded instead of
// being served to a decoder that rejects it, or as a level it no longer is.
bool StoredBlobIsCurrent(const std::string& blob, const Target& target,
                         const codec::KvCodec& codec) {
  absl::StatusOr<codec::ParsedChunk> parsed = codec::ParseChunk(blob);
  if (!parsed.ok()) return false;
  const codec::ChunkHeader& h = parsed->header;
  if (target.encoding != pb::KV_ENCODING_CACHEGEN) return true;
  if (h.level != target.level || h.kind != codec::EncodingKind::kRans) return false;
  const std::vector<codec::LevelSpec>& levels = codec.profile().levels;
  if (target.level < 0 || target.level >= static_cast<int32_t>(levels.size()) ||
      !(h.geometry == codec.profile().geometry)) {
    return false;
  }
  absl::StatusOr<codec::LevelSpec> coded = codec::RansChunkLevelSpec(*parsed);
  if (!coded.ok()) return false;
  const codec::LevelSpec& want = levels[target.level];
  for (int slot = 0; slot < h.geometry.slots(); ++slot) {
    if (coded->Bins(slot) != want.Bins(slot) || coded->Refine(slot) != want.Refine(slot)) {
      return false;
    }
  }
  return h.profile_hash == 0 || h.profile_hash == codec.profile().TablesHash();
}

std::string EncodingName(pb::KvEncoding e, int32_t level) {
  switch (e) {
    case pb::KV_ENCODING_RAW:
      return "raw";
    case pb::KV_ENCODING_QUANT8:
      return "quant8";
    case pb::KV_ENCODING_CACHEGEN:
      return absl::StrCat("level ", level);
    default:
      return absl::StrCat("encoding ", static_cast<int>(e));
  }
}

// Metric label for an encoding: the level, or -1 raw / -2 quant8.
int MetricLevel(const Target& t) {
  if (t.encoding == pb::KV_ENCODING_CACHEGEN) return t.level;
  return t.encoding == pb::KV_ENCODING_RAW ? -1 : -2;
}

absl::StatusOr<tensor::DType> TensorDType(pb::DType d) {
  switch (d) {
    case pb::DTYPE_F32:
      return tensor::DType::kF32;
    case pb::DTYPE_F16:
    case pb::DTYPE_UNSPECIFIED:
      return tensor::DType::kF16;
    case pb::DTYPE_BF16:
      return tensor::DType::kBF16;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown KV dtype ", static_cast<int>(d)));
  }
}

}  // namespace

store::BlobKey BlobKeyFor(const std::string& chunk_hash, pb::KvEncoding encoding, int32_t level) {
  store::BlobKey key;
  std::memcpy(key.hash.bytes.data(), chunk_hash.data(),
              std::min(chunk_hash.size(), key.hash.bytes.size()));
  key.encoding = static_cast<uint32_t>(encoding);
  key.level = encoding == pb::KV_ENCODING_CACHEGEN ? static_cast<uint32_t>(level) : 0;
  return key;
}

KvCacheCore::KvCacheCore(std::unique_ptr<store::ChunkStore> store,
                         std::optional<codec::CodecProfile> profile, KvCacheOptions options)
    : store_(std::move(store)), profile_(std::move(profile)), options_(std::move(options)) {
  PublishStoreStats();
}

void KvCacheCore::PublishStoreStats() {
  const store::StoreStats s = store_->Stats();
  auto& m = obs::KvCacheMetrics::Get();
  m.SetStoreSize(options_.store_backend, static_cast<double>(s.bytes),
                 static_cast<double>(s.items));
  m.SetStoreCapacity(options_.store_backend, static_cast<double>(s.capacity_bytes));
  // The store counts its evictions; the counter gets the ones not counted yet (only ever
  // forward, whichever thread publishes first).
  uint64_t seen = evictions_published_.load();
  while (s.evictions > seen && !evictions_published_.compare_exchange_weak(seen, s.evictions)) {
  }
  for (uint64_t i = seen; i < s.evictions; ++i) m.CountStoreEviction(options_.store_backend);
}

absl::StatusOr<KvCacheCore::ModelInfo> KvCacheCore::GetModelInfo() {
  std::lock_guard<std::mutex> lock(mu_);
  if (model_) return *model_;
  if (options_.inference_address.empty()) {
    return absl::FailedPreconditionError("no --inference address: cannot prefill");
  }
  if (!inference_) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        rpc::MakeChannel(options_.inference_address);
    if (!channel.ok()) return channel.status();
    inference_ = pb::Inference::NewStub(*channel);
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  pb::ModelInfo info;
  grpc::Status s = inference_->GetModelInfo(&context, pb::GetModelInfoRequest(), &info);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("inference ", options_.inference_address,
                                               " GetModelInfo failed: ", s.error_message()));
  }
  ModelInfo m;
  if (info.fingerprint().size() != m.fingerprint.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "inference reports a ", info.fingerprint().size(), "-byte model fingerprint; expected 16"));
  }
  std::memcpy(m.fingerprint.data(), info.fingerprint().data(), m.fingerprint.size());
  m.geometry.layers = static_cast<int>(info.geometry().num_layers());
  m.geometry.kv_heads = static_cast<int>(info.geometry().num_kv_heads());
  m.geometry.head_dim = static_cast<int>(info.geometry().head_dim());
  if (m.geometry.layers <= 0 || m.geometry.channels() <= 0) {
    return absl::FailedPreconditionError("inference reports an empty KV geometry");
  }
  model_ = m;
  return m;
}

absl::StatusOr<std::shared_ptr<const codec::KvCodec>> KvCacheCore::CodecFor(
    const ModelInfo& model) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!codec_) {
    absl::StatusOr<codec::KvCodec> c =
        profile_ ? codec::KvCodec::Create(*profile_)
                 : codec::KvCodec::CreateDefault(model.fingerprint, model.geometry);
    if (!c.ok()) return c.status();
    codec_ = std::make_shared<const codec::KvCodec>(*std::move(c));
  }
  const codec::CodecProfile& p = codec_->profile();
  if (p.fingerprint != model.fingerprint || !(p.geometry == model.geometry)) {
    return absl::FailedPreconditionError(
        "the codec profile was calibrated for another model than the one inference serves "
        "(fingerprint or KV geometry differ): run tools/calibrate for this model");
  }
  return codec_;
}

absl::Status KvCacheCore::Ingest(const pb::IngestRequest& request,
                                 const std::function<void(const pb::IngestProgress&)>& on_progress,
                                 IngestCancellation* cancel) {
  auto cancelled = [cancel] { return cancel != nullptr && cancel->cancelled(); };
  const absl::Status cancelled_error =
      absl::CancelledError("Ingest cancelled by the client (or its deadline passed)");
  const Clock::time_point t0 = Clock::now();
  if (absl::Status s = store::ValidateName("tenant", request.tenant()); !s.ok()) return s;
  if (absl::Status s = store::ValidateName("context_id", request.context_id()); !s.ok()) return s;
  if (request.tokens().ids_size() == 0) return absl::InvalidArgumentError("no tokens to ingest");
  const uint32_t chunk_tokens =
      request.chunk_tokens() == 0 ? options_.chunk_tokens : request.chunk_tokens();
  if (chunk_tokens > 65536) {
    return absl::InvalidArgumentError(absl::StrCat("chunk_tokens ", chunk_tokens, " > 65536"));
  }
  std::vector<uint32_t> ids;
  ids.reserve(request.tokens().ids_size());
  for (int32_t id : request.tokens().ids()) {
    if (id < 0) return absl::InvalidArgumentError(absl::StrCat("negative token id ", id));
    ids.push_back(static_cast<uint32_t>(id));
  }

  absl::StatusOr<ModelInfo> model = GetModelInfo();
  if (!model.ok()) return model.status();
  absl::StatusOr<std::shared_ptr<const codec::KvCodec>> codec_or = CodecFor(*model);
  if (!codec_or.ok()) return codec_or.status();
  const codec::KvCodec& codec = **codec_or;
  const int num_levels = static_cast<int>(codec.profile().levels.size());

  std::vector<Target> targets;
  std::set<int> levels(request.levels().begin(), request.levels().end());
  if (levels.empty()) {
    for (int l = 0; l < num_levels; ++l) levels.insert(l);
  }
  for (int l : levels) {
    if (l < 0 || l >= num_levels) {
      return absl::InvalidArgumentError(absl::StrCat(
          "level ", l, " is not in the codec profile (levels 0..", num_levels - 1, ")"));
    }
    targets.push_back({pb::KV_ENCODING_CACHEGEN, l});
  }
  if (request.keep_baselines()) {
    targets.push_back({pb::KV_ENCODING_RAW, -1});
    targets.push_back({pb::KV_ENCODING_QUANT8, -1});
  }

  absl::StatusOr<std::vector<store::ChunkHash>> hashes = store::ComputeChunkHashes(
      ids, chunk_tokens, model->fingerprint, request.tenant(), /*include_partial=*/true);
  if (!hashes.ok()) return hashes.status();
  const uint32_t n_chunks = static_cast<uint32_t>(hashes->size());
  const uint32_t n_tokens = static_cast<uint32_t>(ids.size());

  auto& metrics = obs::KvCacheMetrics::Get();
  metrics.AddIngestTokens(n_tokens);

  pb::Manifest manifest;
  manifest.set_context_id(request.context_id());
  manifest.set_tenant(request.tenant());
  manifest.set_model_fingerprint(std::string(model->fingerprint.begin(), model->fingerprint.end()));
  pb::KvGeometry* g = manifest.mutable_geometry();
  g->set_num_layers(model->geometry.layers);
  g->set_num_kv_heads(model->geometry.kv_heads);
  g->set_head_dim(model->geometry.head_dim);
  g->set_dtype(pb::DTYPE_F16);
  manifest.set_num_tokens(n_tokens);
  manifest.set_chunk_tokens(chunk_tokens);
  for (uint32_t i = 0; i < n_chunks; ++i) {
    pb::ManifestChunk* c = manifest.add_chunks();
    c->mutable_ref()->set_context_id(request.context_id());
    c->mutable_ref()->set_chunk_index(i);
    c->mutable_ref()->set_token_begin(i * chunk_tokens);
    c->mutable_ref()->set_token_end(std::min(n_tokens, (i + 1) * chunk_tokens));
    c->mutable_ref()->set_chunk_hash(std::string(
        reinterpret_cast<const char*>((*hashes)[i].bytes.data()), (*hashes)[i].bytes.size()));
  }

  // Reuse: a chunk whose every target blob is already stored (a prefix shared with another
  // context of this tenant) is neither encoded nor written again. The KV of the chunks to
  // (re)compute still comes from one Prefill from position 0 up to the end of the last
  // missing chunk (Prefill's `prefix` input is not used: the stored KV is lossy or fp16, and
  // reusing it would make this context's KV depend on what happened to be stored).
  pb::IngestProgress progress;
  progress.set_chunks_total(n_chunks);
  std::vector<bool> reused(n_chunks, false);
  uint32_t prefill_end = 0;
  for (uint32_t i = 0; i < n_chunks; ++i) {
    pb::ManifestChunk* c = manifest.mutable_chunks(static_cast<int>(i));
    bool all = true;
    std::vector<store::BlobKey> keys;  // one batched lookup per chunk (pipelined on Redis)
    for (const Target& t : targets)
      keys.push_back(BlobKeyFor(c->ref().chunk_hash(), t.encoding, t.level));
    const std::vector<absl::StatusOr<std::string>> blobs = store_->GetMany(keys);
    for (size_t k = 0; k < targets.size() && all; ++k) {
      if (k >= blobs.size() || !blobs[k].ok() ||
          !StoredBlobIsCurrent(*blobs[k], targets[k], codec)) {
        all = false;
        break;
      }
      pb::ChunkEncoding* e = c->add_encodings();
      e->set_encoding(targets[k].encoding);
      e->set_level(targets[k].level);
      e->set_bytes(blobs[k]->size());
    }
    if (all) {
      reused[i] = true;
      progress.set_chunks_reused(progress.chunks_reused() + 1);
      progress.set_chunks_done(progress.chunks_done() + 1);
    } else {
      c->clear_encodings();
      prefill_end = c->ref().token_end();
    }
  }
  metrics.SetIngestPendingChunks(n_chunks - progress.chunks_done());
  if (progress.chunks_reused() > 0) on_progress(progress);

  // A context must fit in the store as a whole: with a byte cap, the LRU would otherwise
  // evict this context's own first chunks while writing its last ones, and commit a manifest
  // whose chunks are gone. Checked per chunk before writing it (sizes are known once encoded).
  const uint64_t capacity = store_->Stats().capacity_bytes;  // 0 = no cap in this process
  uint64_t context_bytes = 0;                                // reused + newly encoded blobs
  for (const pb::ManifestChunk& c : manifest.chunks()) {
    for (const pb::ChunkEncoding& e : c.encodings()) context_bytes += e.bytes();
  }

  double encode_seconds = 0;
  if (cancelled()) return cancelled_error;
  if (prefill_end > 0) {
    pb::PrefillRequest prefill;
    prefill.mutable_tokens()->mutable_ids()->Assign(request.tokens().ids().begin(),
                                                    request.tokens().ids().begin() + prefill_end);
    prefill.set_chunk_tokens(chunk_tokens);
    prefill.set_export_dtype(pb::DTYPE_F32);
    prefill.set_context_id(request.context_id());

    grpc::ClientContext context;
    context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(options_.prefill_deadline_seconds * 1000)));
    std::unique_ptr<grpc::ClientReader<pb::PrefillResponse>> reader;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reader = inference_->Prefill(&context, prefill);
    }
    if (cancel != nullptr) cancel->Attach(&context);
    struct Detach {
      IngestCancellation* c;
      ~Detach() {
        if (c != nullptr) c->Detach();
      }
    } detach{cancel};
    const codec::KvGeometry& geo = model->geometry;
    const size_t max_chunk_bytes =
        static_cast<size_t>(geo.slots()) * chunk_tokens * geo.channels() * sizeof(float);
    rpc::KvPartAssembler assembler(max_chunk_bytes);
    tensor::DType dtype = tensor::DType::kF32;
    uint32_t next_chunk = 0;
    std::vector<float> kv;
    pb::PrefillResponse response;
    absl::Status error;
    while (error.ok() && reader->Read(&response)) {
      if (cancelled()) {
        error = cancelled_error;
        break;
      }
      if (response.has_geometry()) {
        absl::StatusOr<tensor::DType> d = TensorDType(response.geometry().dtype());
        if (!d.ok()) {
          error = d.status();
          break;
        }
        dtype = *d;
      }
      progress.set_prefill_seconds(progress.prefill_seconds() + response.prefill_seconds());
      absl::StatusOr<std::optional<rpc::KvChunk>> chunk = assembler.Add(response.part());
      if (!chunk.ok()) {
        error = chunk.status();
        break;
      }
      if (!chunk->has_value()) continue;
      const rpc::KvChunk& raw = **chunk;
      const uint32_t index = raw.ref.chunk_index();
      if (index != next_chunk || index >= n_chunks) {
        error = absl::InternalError(absl::StrCat("inference sent chunk ", index, ", expected ",
                                                 next_chunk, " of ", n_chunks));
        break;
      }
      ++next_chunk;
      pb::ManifestChunk* mc = manifest.mutable_chunks(static_cast<int>(index));
      const uint32_t begin = mc->ref().token_begin(), end = mc->ref().token_end();
      if (raw.ref.token_begin() != begin || raw.ref.token_end() != end) {
        error = absl::InternalError(absl::StrCat("inference chunk ", index, " covers tokens [",
                                                 raw.ref.token_begin(), ", ", raw.ref.token_end(),
                                                 "), expected [", begin, ", ", end, ")"));
        break;
      }
      if (reused[index]) continue;
      const size_t elements = static_cast<size_t>(geo.slots()) * (end - begin) * geo.channels();
      if (raw.bytes.size() != elements * tensor::DTypeSize(dtype)) {
        error = absl::InternalError(absl::StrCat("inference chunk ", index, " has ",
                                                 raw.bytes.size(), " bytes, expected ",
                                                 elements * tensor::DTypeSize(dtype)));
        break;
      }
      kv.resize(elements);
      if (absl::Status s = tensor::ConvertToFloat(dtype, raw.bytes.data(), elements, kv.data());
          !s.ok()) {
        error = s;
        break;
      }
      codec::KvChunkView view;
      view.geometry = geo;
      view.token_begin = begin;
      view.token_count = end - begin;
      view.fingerprint = model->fingerprint;
      view.data = kv;
      // The chunk's token ids: the codec codes rows whose id repeats in the chunk with repeat
      // contexts (the ids are validated >= 0 above; the chunk carries only the repeat map).
      view.token_ids = std::span<const int32_t>(request.tokens().ids().data() + begin, end - begin);

      std::vector<std::string> blobs;
      std::vector<store::ChunkStore::BlobWrite> writes;
      blobs.reserve(targets.size());
      for (const Target& t : targets) {
        const Clock::time_point te = Clock::now();
        absl::StatusOr<std::string> bytes =
            t.encoding == pb::KV_ENCODING_CACHEGEN ? codec.Encode(view, t.level)
            : t.encoding == pb::KV_ENCODING_RAW    ? codec::EncodeRawF16(view)
                                                   : codec::EncodeInt8(view);
        const double secs = SecondsSince(te);
        if (!bytes.ok()) {
          error = bytes.status();
          break;
        }
        encode_seconds += secs;
        metrics.ObserveCodecEncode(MetricLevel(t), static_cast<double>(elements * 2),
                                   static_cast<double>(bytes->size()), secs);
        pb::ChunkEncoding* e = mc->add_encodings();
        e->set_encoding(t.encoding);
        e->set_level(t.level);
        e->set_bytes(bytes->size());
        progress.set_bytes_stored(progress.bytes_stored() + bytes->size());
        blobs.push_back(*std::move(bytes));
      }
      if (!error.ok()) break;
      for (const std::string& b : blobs) context_bytes += b.size();
      if (capacity != 0 && context_bytes > capacity) {
        error = absl::ResourceExhaustedError(absl::StrCat(
            "context '", request.context_id(), "' needs more than ", context_bytes,
            " bytes at the requested encodings (", index + 1, " of ", n_chunks,
            " chunks encoded) but the store holds at most ", capacity,
            " bytes (--store_capacity_bytes): ingest fewer levels, without baselines, or raise "
            "the capacity"));
        break;
      }
      for (size_t k = 0; k < targets.size(); ++k) {
        writes.push_back(
            {BlobKeyFor(mc->ref().chunk_hash(), targets[k].encoding, targets[k].level), blobs[k]});
      }
      if (absl::Status s = store_->PutMany(writes); !s.ok()) {
        error = s;
        break;
      }
      progress.set_chunks_done(progress.chunks_done() + 1);
      progress.set_encode_seconds(encode_seconds);
      metrics.SetIngestPendingChunks(n_chunks - progress.chunks_done());
      on_progress(progress);
    }
    if (!error.ok()) {
      context.TryCancel();
      reader->Finish();
      return error;
    }
    grpc::Status fs = reader->Finish();
    if (cancelled()) return cancelled_error;
    if (!fs.ok()) {
      return absl::Status(rpc::FromGrpcStatus(fs).code(),
                          absl::StrCat("inference Prefill failed: ", fs.error_message()));
    }
    const uint32_t expected_chunks = (prefill_end + chunk_tokens - 1) / chunk_tokens;
    if (next_chunk != expected_chunks || assembler.in_progress()) {
      return absl::InternalError(absl::StrCat("inference Prefill ended after ", next_chunk,
                                              " chunks, expected ", expected_chunks));
    }
  }

  manifest.set_created_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
  std::string manifest_bytes;
  manifest.SerializeToString(&manifest_bytes);
  if (absl::Status s = store_->PutManifest(request.tenant(), request.context_id(), manifest_bytes);
      !s.ok()) {
    return s;
  }
  PublishStoreStats();
  progress.set_chunks_done(n_chunks);
  progress.set_encode_seconds(encode_seconds);
  progress.set_committed(true);
  *progress.mutable_manifest() = std::move(manifest);
  on_progress(progress);
  (void)t0;
  return absl::OkStatus();
}

absl::StatusOr<pb::Manifest> KvCacheCore::GetManifest(const std::string& tenant,
                                                      const std::string& context_id) {
  if (absl::Status s = store::ValidateName("tenant", tenant); !s.ok()) return s;
  if (absl::Status s = store::ValidateName("context_id", context_id); !s.ok()) return s;
  absl::StatusOr<std::string> bytes = store_->GetManifest(tenant, context_id);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(
          absl::StrCat("no context '", context_id, "' for tenant '", tenant, "'"));
    }
    return bytes.status();
  }
  pb::Manifest manifest;
  if (!manifest.ParseFromString(*bytes) || manifest.tenant() != tenant ||
      manifest.context_id() != context_id) {
    return absl::DataLossError(
        absl::StrCat("stored manifest of context '", context_id, "' is unreadable"));
  }
  return manifest;
}

absl::StatusOr<ChunkBlob> KvCacheCore::ReadChunk(const pb::Manifest& manifest,
                                                 const pb::FetchRequest& request) {
  if (request.chunk_index() >= static_cast<uint32_t>(manifest.chunks_size())) {
    return absl::OutOfRangeError(absl::StrCat("chunk ", request.chunk_index(),
                                              " is outside context '", manifest.context_id(), "' (",
                                              manifest.chunks_size(), " chunks)"));
  }
  const pb::ManifestChunk& chunk = manifest.chunks(static_cast<int>(request.chunk_index()));
  const pb::KvEncoding enc = request.encoding();
  if (enc != pb::KV_ENCODING_RAW && enc != pb::KV_ENCODING_QUANT8 &&
      enc != pb::KV_ENCODING_CACHEGEN) {
    return absl::InvalidArgumentError(absl::StrCat("unknown KV encoding ", static_cast<int>(enc)));
  }
  const int32_t level = enc == pb::KV_ENCODING_CACHEGEN ? request.level() : -1;
  bool listed = false;
  std::vector<std::string> stored;
  for (const pb::ChunkEncoding& e : chunk.encodings()) {
    if (e.encoding() == enc && (enc != pb::KV_ENCODING_CACHEGEN || e.level() == level))
      listed = true;
    stored.push_back(EncodingName(e.encoding(), e.level()));
  }
  if (!listed) {
    return absl::NotFoundError(absl::StrCat("chunk ", request.chunk_index(), " of context '",
                                            manifest.context_id(), "' is not stored at ",
                                            EncodingName(enc, level),
                                            " (stored: ", absl::StrJoin(stored, ", "), ")"));
  }
  const Clock::time_point t0 = Clock::now();
  absl::StatusOr<std::string> bytes = store_->Get(BlobKeyFor(chunk.ref().chunk_hash(), enc, level));
  obs::KvCacheMetrics::Get().CountStoreLookup(options_.store_backend, bytes.ok());
  if (!bytes.ok()) {
    const std::string what = absl::StrCat("chunk ", request.chunk_index(), " of context '",
                                          manifest.context_id(), "' at ", EncodingName(enc, level));
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(absl::StrCat(
          what, " is no longer in the store (evicted or deleted): fall back to text or re-ingest"));
    }
    return absl::Status(bytes.status().code(), absl::StrCat(what, ": ", bytes.status().message()));
  }
  ChunkBlob blob;
  blob.ref = chunk.ref();
  blob.encoding = enc;
  blob.level = level;
  blob.bytes = *std::move(bytes);
  blob.read_seconds = SecondsSince(t0);
  return blob;
}

absl::StatusOr<pb::DeleteContextResponse> KvCacheCore::DeleteContext(
    const std::string& tenant, const std::string& context_id) {
  pb::DeleteContextResponse response;
  absl::StatusOr<pb::Manifest> manifest = GetManifest(tenant, context_id);
  if (absl::IsNotFound(manifest.status())) return response;  // deleted = false
  if (!manifest.ok()) return manifest.status();
  // Commit point first: once the manifest is gone the context is invisible, then its blobs
  // not referenced by another manifest of the tenant are removed (chunk hashes are scoped by
  // tenant, so no other tenant can reference them).
  if (absl::Status s = store_->DeleteManifest(tenant, context_id); !s.ok()) return s;
  response.set_deleted(true);
  std::set<std::string> referenced;
  absl::StatusOr<std::vector<std::string>> others = store_->ListManifests(tenant);
  if (!others.ok()) return others.status();
  for (const std::string& id : *others) {
    absl::StatusOr<pb::Manifest> other = GetManifest(tenant, id);
    if (!other.ok()) {
      // Cannot tell what it references: keep every blob (a leak, never a dangling manifest).
      return response;
    }
    for (const pb::ManifestChunk& c : other->chunks()) referenced.insert(c.ref().chunk_hash());
  }
  for (const pb::ManifestChunk& c : manifest->chunks()) {
    if (referenced.count(c.ref().chunk_hash())) continue;
    for (const pb::ChunkEncoding& e : c.encodings()) {
      const store::BlobKey key = BlobKeyFor(c.ref().chunk_hash(), e.encoding(), e.level());
      absl::StatusOr<bool> present = store_->Contains(key);
      if (present.ok() && *present && store_->Delete(key).ok()) {
        response.set_bytes_freed(response.bytes_freed() + e.bytes());
      }
    }
  }
  PublishStoreStats();
  return response;
}

pb::CodecInfo KvCacheCore::GetCodecInfo() {
  pb::CodecInfo info;
  const codec::CodecProfile* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (codec_) {
      p = &codec_->profile();
    } else if (profile_) {
      p = &*profile_;
    }
  }
  std::vector<codec::LevelSpec> defaults;
  int channels = 0;
  if (p != nullptr) {
    info.set_model_fingerprint(std::string(p->fingerprint.begin(), p->fingerprint.end()));
    defaults = p->levels;
    channels = p->geometry.channels();
  }
  for (size_t i = 0; i < defaults.size(); ++i) {
    const codec::LevelSpec& l = defaults[i];
    pb::CodecLevel* cl = info.add_levels();
    cl->set_level(static_cast<int32_t>(i));
    for (uint16_t b : l.key_bins) cl->add_key_bins(b);
    for (uint16_t b : l.value_bins) cl->add_value_bins(b);
    cl->set_bits_per_element(std::isnan(l.bits_per_element) ? 0 : l.bits_per_element);
    cl->set_quality_loss(std::isnan(l.delta_ppl_pct) ? 0 : l.delta_ppl_pct / 100);
  }
  // The int8 baseline: 8 bits per symbol + one fp16 scale per (layer, token) row of C values.
  if (channels > 0) info.set_quant8_bits_per_element(8.0 + 16.0 / channels);
  info.set_quant8_quality_loss(0);  // kv-anchors.md §3: int8 ΔPPL +0.00 ± 0.01 %
  return info;
}

}  // namespace ctx::kvcache
