#include "tests/kvcache/fixture_inference.h"

#include <stdexcept>

#include "common/rpc/kv_parts.h"
#include "grpcpp/server_builder.h"

namespace ctx::kvcache::testing {

namespace pb = ctxstream::v1;

grpc::Status FixtureInference::GetModelInfo(grpc::ServerContext*, const pb::GetModelInfoRequest*,
                                            pb::ModelInfo* response) {
  const model::LlamaConfig& cfg = model_->config();
  response->set_name("tiny-llama");
  const auto& fp = model_->fingerprint().bytes;
  response->set_fingerprint(std::string(fp.begin(), fp.end()));
  response->mutable_geometry()->set_num_layers(cfg.num_layers);
  response->mutable_geometry()->set_num_kv_heads(cfg.num_kv_heads);
  response->mutable_geometry()->set_head_dim(cfg.head_dim);
  response->mutable_geometry()->set_dtype(pb::DTYPE_F32);
  response->set_vocab_size(cfg.vocab_size);
  response->set_max_context_tokens(cfg.max_position_embeddings);
  return grpc::Status::OK;
}

grpc::Status FixtureInference::Prefill(grpc::ServerContext*, const pb::PrefillRequest* request,
                                       grpc::ServerWriter<pb::PrefillResponse>* writer) {
  ++prefill_calls;
  std::vector<int32_t> ids(request->tokens().ids().begin(), request->tokens().ids().end());
  prefilled_tokens += static_cast<int>(ids.size());
  const int chunk = request->chunk_tokens() == 0 ? 256 : static_cast<int>(request->chunk_tokens());
  model::KvCache cache = model_->NewKvCache(static_cast<int>(ids.size()));
  if (absl::Status s = model_->Forward(ids, cache, model::Logits::kNone, nullptr); !s.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(s.message()));
  }
  bool first = true;
  for (int a = 0, i = 0; a < static_cast<int>(ids.size()); a += chunk, ++i) {
    const int b = std::min(static_cast<int>(ids.size()), a + chunk);
    auto bytes = cache.Export(a, b, tensor::DType::kF32);
    if (!bytes.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "export failed");
    pb::ChunkRef ref;
    ref.set_context_id(request->context_id());
    ref.set_chunk_index(i);
    ref.set_token_begin(a);
    ref.set_token_end(b);
    const std::string data(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    for (pb::KvChunkPart& part : rpc::SplitKvChunk(ref, pb::KV_ENCODING_RAW, -1, data)) {
      pb::PrefillResponse r;
      if (first) {
        const model::LlamaConfig& cfg = model_->config();
        r.mutable_geometry()->set_num_layers(cfg.num_layers);
        r.mutable_geometry()->set_num_kv_heads(cfg.num_kv_heads);
        r.mutable_geometry()->set_head_dim(cfg.head_dim);
        r.mutable_geometry()->set_dtype(pb::DTYPE_F32);
        first = false;
      }
      *r.mutable_part() = std::move(part);
      writer->Write(r);
    }
  }
  return grpc::Status::OK;
}

FixtureServer::FixtureServer(grpc::Service* service) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  builder.SetMaxSendMessageSize(8 << 20);
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) throw std::runtime_error("fixture inference server did not start");
  address_ = "127.0.0.1:" + std::to_string(port);
}

FixtureServer::~FixtureServer() { server_->Shutdown(); }

const model::Model& TinyLlama() {
  static const model::Model* model = [] {
    auto m = model::Model::Load(std::string(CTX_SOURCE_DIR) + "/models/tiny-llama");
    if (!m.ok()) throw std::runtime_error(m.status().ToString());
    return m->release();
  }();
  return *model;
}

}  // namespace ctx::kvcache::testing
