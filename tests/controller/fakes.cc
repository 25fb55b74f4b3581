#include "tests/controller/fakes.h"

#include <thread>

#include "absl/strings/str_split.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace ctx::testing {

namespace pb = ctxstream::v1;

grpc::Status FakeInference::GetModelInfo(grpc::ServerContext* ctx, const pb::GetModelInfoRequest*,
                                         pb::ModelInfo* out) {
  {
    std::lock_guard<std::mutex> lock(mu);
    deadlines.push_back(ctx->deadline());
  }
  out->set_name("fake-llama");
  out->set_bos_id(1);
  out->set_max_context_tokens(max_context_tokens);
  out->set_active_requests(active_requests.load());
  out->set_eos_id(2);
  // The PyTorch reference's speeds (kv-anchors §1): 512 tokens in 0.351 s, 2048 in 2.357 s.
  auto* a = out->add_prefill_speed();
  a->set_tokens(512);
  a->set_tokens_per_second(512 / 0.351);
  // A third point on the same curve (a = 5.30e-4, b = 6.06e-7, c = 0) makes the fit unique.
  auto* m = out->add_prefill_speed();
  m->set_tokens(1024);
  m->set_tokens_per_second(1024 / 0.8605);
  auto* b = out->add_prefill_speed();
  b->set_tokens(2048);
  b->set_tokens_per_second(2048 / 2.357);
  out->set_decode_seconds_per_token(0.016);
  return grpc::Status::OK;
}

grpc::Status FakeInference::Tokenize(grpc::ServerContext* ctx, const pb::TokenizeRequest* req,
                                     pb::TokenizeResponse* out) {
  {
    std::lock_guard<std::mutex> lock(mu);
    deadlines.push_back(ctx->deadline());
  }
  if (req->add_bos()) out->mutable_tokens()->add_ids(1);
  for (absl::string_view w : absl::StrSplit(req->text(), ' ', absl::SkipEmpty())) {
    out->mutable_tokens()->add_ids(100 + static_cast<int>(w.size()));
  }
  return grpc::Status::OK;
}

grpc::Status FakeInference::Generate(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<pb::GenerateResponse, pb::GenerateRequest>* stream) {
  ++generate_calls;
  pb::GenerateRequest req;
  if (!stream->Read(&req) || !req.has_start()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "first message must be start");
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    deadlines.push_back(ctx->deadline());
    starts.push_back(req.start());
  }
  if (generate_unavailable) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake replica is down");
  }
  const pb::GenerateStart& start = req.start();
  bool kv = false;
  uint32_t context_tokens = 0;
  for (const pb::ContextSegment& s : start.segments()) {
    context_tokens += s.token_end() - s.token_begin();
    kv = kv || s.form() == pb::FORM_KV;
  }
  pb::GenerateResponse resp;
  if (start.has_kv_source()) {
    for (const pb::ChunkPlan& c : start.kv_source().plan()) {
      pb::ChunkDecision* d = resp.mutable_decision();
      d->set_chunk_index(c.chunk_index());
      d->set_form(c.form());
      d->set_level(c.level());
      d->set_reason("fake: as planned");
      d->set_measured_bytes_per_second(c.chunk_index() > 0 ? chunk_wire_bps : 0);
      stream->Write(resp);
    }
  }
  const int n_tokens = slow ? 2000 : tokens_to_generate;
  for (int i = 0; i < n_tokens; ++i) {
    if (slow) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (ctx->IsCancelled()) {
        saw_cancel = true;
        return grpc::Status::CANCELLED;
      }
    }
    pb::GeneratedToken* t = resp.mutable_token();
    t->set_id(200 + i);
    t->set_text(" t" + std::to_string(i));
    t->set_index(static_cast<uint32_t>(i));
    stream->Write(resp);
  }
  pb::GenerateDone* done = resp.mutable_done();
  const double n0 = kv ? context_tokens : 0;
  const double n1 = context_tokens + start.question().ids_size();
  done->mutable_timings()->set_prefill_seconds(
      prefill_scale * (5.30e-4 * (n1 - n0) + 6.06e-7 * (n1 * n1 - n0 * n0) / 2));
  done->set_prefilled_tokens(kv ? 0 : context_tokens);
  done->set_context_tokens(context_tokens);
  done->set_generated_tokens(static_cast<uint32_t>(tokens_to_generate));
  done->set_finish_reason("length");
  if (kv) {
    done->mutable_timings()->set_fetch_seconds(fetch_seconds);
    done->set_kv_tokens(context_tokens);
    pb::ByteCount* b = done->add_bytes();
    b->set_form(pb::FORM_KV);
    b->set_level(start.segments(0).level());
    b->set_bytes(kv_bytes_reported);
    b->set_chunks(static_cast<uint32_t>(start.segments_size()));
  }
  done->set_fell_back(report_fell_back);
  if (report_fell_back) done->set_fallback_reason("fake: chunk 1 corrupt, prefilled");
  stream->Write(resp);
  return grpc::Status::OK;
}

grpc::Status FakeKvCache::Ingest(grpc::ServerContext* ctx, const pb::IngestRequest* req,
                                 grpc::ServerWriter<pb::IngestProgress>* writer) {
  if (unavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake kvcache down");
  {
    std::lock_guard<std::mutex> lock(mu);
    deadlines.push_back(ctx->deadline());
  }
  const uint32_t n = static_cast<uint32_t>(req->tokens().ids_size());
  const uint32_t ct = req->chunk_tokens() == 0 ? 256 : req->chunk_tokens();
  pb::Manifest m;
  m.set_context_id(req->context_id());
  m.set_tenant(req->tenant());
  m.set_num_tokens(n);
  m.set_chunk_tokens(ct);
  const uint32_t chunks = (n + ct - 1) / ct;
  pb::IngestProgress p;
  p.set_chunks_total(chunks);
  for (uint32_t i = 0; i < chunks; ++i) {
    pb::ManifestChunk* c = m.add_chunks();
    c->mutable_ref()->set_context_id(req->context_id());
    c->mutable_ref()->set_chunk_index(i);
    c->mutable_ref()->set_token_begin(i * ct);
    c->mutable_ref()->set_token_end(std::min(n, (i + 1) * ct));
    const uint32_t t = c->ref().token_end() - c->ref().token_begin();
    for (size_t l = 0; l < bytes_per_token.size(); ++l) {
      pb::ChunkEncoding* e = c->add_encodings();
      e->set_encoding(pb::KV_ENCODING_CACHEGEN);
      e->set_level(static_cast<int>(l));
      e->set_bytes(static_cast<uint64_t>(bytes_per_token[l] * t));
    }
    p.set_chunks_done(i + 1);
    writer->Write(p);
  }
  p.set_committed(true);
  *p.mutable_manifest() = m;
  writer->Write(p);
  std::lock_guard<std::mutex> lock(mu);
  manifests[req->tenant() + "/" + req->context_id()] = m;
  return grpc::Status::OK;
}

grpc::Status FakeKvCache::GetManifest(grpc::ServerContext* ctx, const pb::GetManifestRequest* req,
                                      pb::Manifest* out) {
  if (unavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake kvcache down");
  std::lock_guard<std::mutex> lock(mu);
  deadlines.push_back(ctx->deadline());
  auto it = manifests.find(req->tenant() + "/" + req->context_id());
  if (it == manifests.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such context");
  *out = it->second;
  return grpc::Status::OK;
}

grpc::Status FakeKvCache::DeleteContext(grpc::ServerContext*, const pb::DeleteContextRequest* req,
                                        pb::DeleteContextResponse* out) {
  if (unavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake kvcache down");
  std::lock_guard<std::mutex> lock(mu);
  const std::string key = req->tenant() + "/" + req->context_id();
  out->set_deleted(manifests.erase(key) > 0);
  deleted.push_back(key);
  return grpc::Status::OK;
}

grpc::Status FakeKvCache::GetCodecInfo(grpc::ServerContext*, const pb::GetCodecInfoRequest*,
                                       pb::CodecInfo* out) {
  if (unavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake kvcache down");
  for (size_t l = 0; l < level_loss.size(); ++l) {
    pb::CodecLevel* c = out->add_levels();
    c->set_level(static_cast<int>(l));
    c->set_quality_loss(level_loss[l]);
  }
  return grpc::Status::OK;
}

grpc::Status FakeCompressor::Compress(grpc::ServerContext*, const pb::CompressRequest* req,
                                      pb::CompressResponse* out) {
  ++calls;
  std::string kept;
  int i = 0;
  for (const std::string& ctx : req->contexts()) {
    for (absl::string_view w : absl::StrSplit(ctx, ' ', absl::SkipEmpty())) {
      if (i++ % 2 == 0) {
        if (!kept.empty()) kept += ' ';
        kept.append(w.data(), w.size());
      }
    }
  }
  out->set_compressed_prompt(kept);
  out->add_compressed_prompt_list(kept);
  out->set_compress_seconds(0.001);
  return grpc::Status::OK;
}

FakeServer::FakeServer(grpc::Service* service) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  server_ = builder.BuildAndStart();
  address_ = "127.0.0.1:" + std::to_string(port);
}

FakeServer::~FakeServer() { Shutdown(); }

void FakeServer::Shutdown() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_.reset();
  }
}

std::string Words(int words) {
  std::string s;
  for (int i = 0; i < words; ++i) s += i == 0 ? "w" : " w";
  return s;
}

}  // namespace ctx::testing
