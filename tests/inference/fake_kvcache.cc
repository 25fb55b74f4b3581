#include "tests/inference/fake_kvcache.h"

#include "common/rpc/kv_parts.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace ctx::testing {

namespace v1 = ctxstream::v1;

void FakeKvCache::AddChunk(int index, int begin, int end, int level, std::string bytes) {
  Stored& s = chunks_[index];
  s.begin = begin;
  s.end = end;
  s.by_level[level] = std::move(bytes);
}

std::string FakeKvCache::Start() {
  int port = 0;
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(this);
  server_ = b.BuildAndStart();
  return "127.0.0.1:" + std::to_string(port);
}

FakeKvCache::~FakeKvCache() {
  if (server_) server_->Shutdown();
}

grpc::Status FakeKvCache::Fetch(
    grpc::ServerContext*, grpc::ServerReaderWriter<v1::FetchResponse, v1::FetchRequest>* stream) {
  v1::FetchRequest req;
  while (stream->Read(&req)) {
    if (req.done()) break;
    fetch_requests_++;
    const int index = static_cast<int>(req.chunk_index());
    if (index == drop_chunk_) return grpc::Status(grpc::StatusCode::NOT_FOUND, "chunk lost");
    auto it = chunks_.find(index);
    const int level = req.encoding() == v1::KV_ENCODING_CACHEGEN ? req.level() : -1;
    if (it == chunks_.end() || !it->second.by_level.count(level)) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such chunk/level");
    }
    v1::ChunkRef ref;
    ref.set_chunk_index(index);
    ref.set_token_begin(it->second.begin);
    ref.set_token_end(it->second.end);
    for (auto& part :
         rpc::SplitKvChunk(ref, req.encoding(), level, it->second.by_level[level], 64 * 1024)) {
      v1::FetchResponse r;
      *r.mutable_part() = std::move(part);
      if (!stream->Write(r)) return grpc::Status::OK;
    }
  }
  return grpc::Status::OK;
}

grpc::Status FakeKvCache::GetManifest(grpc::ServerContext*, const v1::GetManifestRequest* req,
                                      v1::Manifest* resp) {
  resp->set_context_id(req->context_id());
  resp->set_tenant(req->tenant());
  for (const auto& [index, s] : chunks_) {
    v1::ManifestChunk* c = resp->add_chunks();
    c->mutable_ref()->set_chunk_index(index);
    c->mutable_ref()->set_token_begin(s.begin);
    c->mutable_ref()->set_token_end(s.end);
    for (const auto& [level, bytes] : s.by_level) {
      v1::ChunkEncoding* e = c->add_encodings();
      e->set_encoding(level >= 0 ? v1::KV_ENCODING_CACHEGEN : v1::KV_ENCODING_RAW);
      e->set_level(level);
      e->set_bytes(bytes.size());
    }
  }
  return grpc::Status::OK;
}

}  // namespace ctx::testing
