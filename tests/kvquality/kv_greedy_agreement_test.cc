// Ingest -> Fetch -> Generate over gRPC with the real inference and kvcache services, on the
// long documents (tests/data/long_docs), checked two ways (issue 4, "Tests"):
//
//  1. at the near-lossless level (0) the greedy tokens agree with the text path on >= 99 % of
//     the greedy tokens;
//  2. at every level of the shipped codec profile the service's greedy tokens are exactly what
//     the libraries compute in-process (ctx_model prefill in the same 256-token blocks,
//     ctx_codec encode + decode of every chunk, layer 0 recomputed where the level does not
//     send it, model::Generate) — and the stored chunk sizes equal the in-process encodings.
//
// Per document the first kContextTokens ids ([BOS] + spm, half the document if shorter) are the
// context and kGreedyTokens tokens are generated greedily (EOS does not stop). With text answer
// t[0:N] and KV answer k[0:N]:
//  - free-running agreement = #{i : k[i] == t[i]} / N over the whole generated length. A single
//    flip at a near-tie changes the rest of the answer, and such flips are frequent: on these
//    documents even the 8-bit baseline (255 levels per token row) gives ~74 % (6 of 10
//    answers identical, tools/kvquality --greedy_tokens), only raw fp16 gives 100 %. Reported.
//  - agreement on the greedy tokens (asserted >= 99 % at level 0): #{i : the KV path's greedy
//    token at i, given the context and the text path's own t[0:i], equals t[i]} / N. Measured
//    over gRPC by resynchronizing: after a divergence at i, Generate again from KV with
//    question = t[0:i+1] and compare the rest; each divergence costs one position.
#include <cblas.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "common/codec/codec.h"
#include "common/codec/profile.h"
#include "common/model/generate.h"
#include "common/model/kv_cache.h"
#include "common/model/layer0_kv.h"
#include "common/model/model.h"
#include "common/rpc/channel.h"
#include "ctxstream/v1/inference.grpc.pb.h"
#include "ctxstream/v1/kvcache.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"

namespace ctx::testing {
namespace {

namespace pb = ctxstream::v1;

constexpr int kDocs = 20;             // every document of index.json
constexpr int kContextTokens = 1024;  // kv-anchors §3 context (4 chunks of 256)
constexpr int kChunkTokens = 256;
constexpr int kGreedyTokens = 32;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(600);
}

struct Services {
  Services() {
    const std::string model = SourcePath("models/tiny-llama");
    const std::string profile = model + "/kvcodec.profile";
    inference = StartService("inference", {"--model_dir=" + model, "--codec_profile=" + profile,
                                           "--measure_speed=false"});
    kvcache = StartService("kvcache", {"--inference=" + inference.grpc_address, "--store=memory",
                                       "--codec_profile=" + profile});
    inference_stub = pb::Inference::NewStub(*rpc::MakeChannel(inference.grpc_address));
    kvcache_stub = pb::KvCache::NewStub(*rpc::MakeChannel(kvcache.grpc_address));
  }

  std::vector<int32_t> Tokenize(const std::string& text) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    pb::TokenizeRequest req;
    req.set_text(text);
    req.set_add_bos(true);
    pb::TokenizeResponse resp;
    const grpc::Status s = inference_stub->Tokenize(&ctx, req, &resp);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return {resp.tokens().ids().begin(), resp.tokens().ids().end()};
  }

  pb::Manifest Ingest(const std::string& id, const std::vector<int32_t>& ids) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    pb::IngestRequest req;
    req.set_context_id(id);
    req.set_tenant("t");
    for (int32_t t : ids) req.mutable_tokens()->add_ids(t);
    req.set_chunk_tokens(kChunkTokens);
    auto reader = kvcache_stub->Ingest(&ctx, req);
    pb::IngestProgress p, last;
    while (reader->Read(&p)) last = p;
    const grpc::Status s = reader->Finish();
    INFO(s.error_message());
    REQUIRE(s.ok());
    REQUIRE(last.committed());
    return last.manifest();
  }

  // Greedy tokens after the context, as text (level < 0) or fetched by the inference node from
  // kvcache at `level` for every chunk.
  std::vector<int32_t> Generate(const std::string& id, const std::vector<int32_t>& ids, int level,
                                std::span<const int32_t> question = {},
                                int max_new = kGreedyTokens) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    auto stream = inference_stub->Generate(&ctx);
    pb::GenerateRequest req;
    pb::GenerateStart* start = req.mutable_start();
    const int n = static_cast<int>(ids.size());
    for (int a = 0, i = 0; a < n; a += kChunkTokens, ++i) {
      const int b = std::min(n, a + kChunkTokens);
      pb::ContextSegment* seg = start->add_segments();
      seg->set_token_begin(a);
      seg->set_token_end(b);
      seg->set_form(level < 0 ? pb::FORM_TEXT : pb::FORM_KV);
      seg->set_level(level);
      for (int t = a; t < b; ++t) seg->mutable_tokens()->add_ids(ids[t]);
      if (level >= 0) {
        pb::ChunkPlan* plan = start->mutable_kv_source()->add_plan();
        plan->set_chunk_index(i);
        plan->set_form(pb::FORM_KV);
        plan->set_level(level);
      }
    }
    if (level >= 0) {
      start->mutable_kv_source()->set_kvcache_address(kvcache.grpc_address);
      start->mutable_kv_source()->set_context_id(id);
      start->mutable_kv_source()->set_tenant("t");
    }
    for (int32_t t : question) start->mutable_question()->add_ids(t);
    start->mutable_sampling()->set_max_new_tokens(max_new);
    start->mutable_sampling()->set_temperature(0);
    start->mutable_sampling()->set_stop_at_eos(false);
    REQUIRE(stream->Write(req));
    stream->WritesDone();
    std::vector<int32_t> out;
    pb::GenerateResponse resp;
    pb::GenerateDone done;
    while (stream->Read(&resp)) {
      if (resp.has_token()) out.push_back(resp.token().id());
      if (resp.has_done()) done = resp.done();
    }
    const grpc::Status s = stream->Finish();
    INFO(s.error_message());
    REQUIRE(s.ok());
    CHECK_FALSE(done.fell_back());
    if (level >= 0) CHECK(done.kv_tokens() == static_cast<uint32_t>(n));
    return out;
  }

  RunningService inference, kvcache;
  std::unique_ptr<pb::Inference::Stub> inference_stub;
  std::unique_ptr<pb::KvCache::Stub> kvcache_stub;
};

// The receiver's computation with the libraries alone.
class InProcess {
 public:
  InProcess() {
    // One BLAS thread, as the inference service runs (--blas_threads 1): the GEMM split
    // across threads changes float rounding, and with it the encoded bytes.
    openblas_set_num_threads(1);
    const std::string dir = SourcePath("models/tiny-llama");
    auto m = model::Model::Load(dir);
    REQUIRE(m.ok());
    model_ = *std::move(m);
    auto profile = codec::ParseProfile(ReadFile(dir + "/kvcodec.profile"));
    REQUIRE(profile.ok());
    auto c = codec::KvCodec::Create(*std::move(profile));
    REQUIRE(c.ok());
    codec_ = std::make_unique<codec::KvCodec>(*std::move(c));
    layer0_ = std::make_unique<model::Layer0KvComputer>(*model_);
  }

  const codec::KvCodec& codec() const { return *codec_; }

  // Prefill of the context in 256-token blocks (as inference Prefill does for kvcache Ingest).
  model::KvCache Prefill(const std::vector<int32_t>& ids) const {
    model::KvCache cache = model_->NewKvCache(static_cast<int>(ids.size()));
    const std::span<const int32_t> all(ids);
    for (size_t a = 0; a < ids.size(); a += kChunkTokens) {
      const size_t b = std::min(ids.size(), a + kChunkTokens);
      REQUIRE(model_->Forward(all.subspan(a, b - a), cache, model::Logits::kNone, nullptr).ok());
    }
    return cache;
  }

  // Encodes every chunk of `full` at `level` (sizes into `chunk_bytes`), decodes it into a new
  // cache, recomputes layer 0 where it was not sent, and generates greedily.
  std::vector<int32_t> Generate(const std::vector<int32_t>& ids, const model::KvCache& full,
                                int level, std::vector<size_t>* chunk_bytes) const {
    const model::LlamaConfig& cfg = model_->config();
    const codec::KvGeometry geo{cfg.num_layers, cfg.num_kv_heads, cfg.head_dim};
    const int n = static_cast<int>(ids.size());
    model::KvCache cache = model_->NewKvCache(n + kGreedyTokens + 1);
    for (int a = 0; a < n; a += kChunkTokens) {
      const int b = std::min(n, a + kChunkTokens);
      auto raw = full.Export(a, b, tensor::DType::kF32);
      REQUIRE(raw.ok());
      std::vector<float> kv(raw->size() / sizeof(float));
      std::memcpy(kv.data(), raw->data(), raw->size());
      codec::KvChunkView view{geo,
                              static_cast<uint64_t>(a),
                              static_cast<uint32_t>(b - a),
                              model_->fingerprint().bytes,
                              kv,
                              std::span<const int32_t>(ids).subspan(a, b - a)};
      auto bytes = codec_->Encode(view, level);
      REQUIRE(bytes.ok());
      chunk_bytes->push_back(bytes->size());
      auto decoded = codec_->Decode(*bytes);
      REQUIRE(decoded.ok());
      REQUIRE(
          cache
              .Import(a, b, tensor::DType::kF32, std::as_bytes(std::span<const float>(decoded->kv)))
              .ok());
      const bool k0 = decoded->header.SlotPresent(0), v0 = decoded->header.SlotPresent(1);
      if (!k0 || !v0) {
        const int C = geo.channels();
        std::vector<float> k(static_cast<size_t>(b - a) * C), v(k.size());
        REQUIRE(layer0_
                    ->Compute(std::span<const int32_t>(ids).subspan(a, b - a), a, k.data(), C,
                              v.data(), C)
                    .ok());
        if (!k0) std::copy(k.begin(), k.end(), cache.keys(0) + static_cast<size_t>(a) * C);
        if (!v0) std::copy(v.begin(), v.end(), cache.values(0) + static_cast<size_t>(a) * C);
      }
    }
    model::GenerateOptions opts;
    opts.max_new_tokens = kGreedyTokens;
    opts.stop_at_eos = false;
    auto r = model::Generate(*model_, ids, cache, opts);
    REQUIRE(r.ok());
    return r->tokens;
  }

 private:
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<codec::KvCodec> codec_;
  std::unique_ptr<model::Layer0KvComputer> layer0_;
};

// Positions where the KV path's greedy token, given the text answer's own prefix, equals the
// text answer's token (resynchronizing after every divergence, see the top comment).
int ResyncedAgreement(Services& services, const std::string& id, const std::vector<int32_t>& ids,
                      int level, const std::vector<int32_t>& text, std::vector<int32_t> run) {
  const int n = static_cast<int>(text.size());
  int equal = 0, offset = 0;  // run[j] is the KV path's token at position offset + j
  for (;;) {
    int j = 0;
    while (offset + j < n && j < static_cast<int>(run.size()) && run[j] == text[offset + j]) {
      ++equal;
      ++j;
    }
    offset += j + 1;  // position offset + j diverged: one miss, resynchronize after it
    if (offset >= n) break;
    run = services.Generate(id, ids, level, std::span<const int32_t>(text.data(), offset),
                            n - offset);
  }
  return equal;
}

}  // namespace

TEST_CASE(
    "KV path over gRPC: near-lossless level agrees with the text path and every level "
    "matches the in-process libraries",
    "[kvquality][integration]") {
  Services services;
  InProcess local;
  const int levels = static_cast<int>(local.codec().profile().levels.size());
  REQUIRE(levels >= 4);

  const std::string dir = SourcePath("tests/data/long_docs");
  const nlohmann::json index = nlohmann::json::parse(ReadFile(dir + "/index.json"));
  REQUIRE(index.size() >= static_cast<size_t>(kDocs));
  std::map<int, std::pair<int64_t, int64_t>> agree;  // level -> (equal positions, positions)
  int64_t resynced_equal = 0, resynced_total = 0;    // level 0
  for (int d = 0; d < kDocs; ++d) {
    const std::string file = index[d].at("file").get<std::string>();
    INFO(file);
    std::vector<int32_t> ids = services.Tokenize(ReadFile(dir + "/" + file));
    ids.resize(std::min<size_t>(kContextTokens, ids.size() / 2));
    const std::string id = "doc" + std::to_string(d);
    const pb::Manifest manifest = services.Ingest(id, ids);
    REQUIRE(manifest.chunks_size() ==
            static_cast<int>((ids.size() + kChunkTokens - 1) / kChunkTokens));

    const std::vector<int32_t> text = services.Generate(id, ids, -1);
    REQUIRE(text.size() == static_cast<size_t>(kGreedyTokens));
    const model::KvCache full = local.Prefill(ids);
    std::string line;
    for (int level = 0; level < levels; ++level) {
      INFO("level " << level);
      const std::vector<int32_t> kv = services.Generate(id, ids, level);
      REQUIRE(kv.size() == text.size());
      std::vector<size_t> sizes;
      const std::vector<int32_t> mine = local.Generate(ids, full, level, &sizes);
      // The service computed exactly what the libraries compute.
      CHECK(kv == mine);
      for (size_t c = 0; c < sizes.size(); ++c) {
        uint64_t stored = 0;
        for (const pb::ChunkEncoding& e : manifest.chunks(static_cast<int>(c)).encodings()) {
          if (e.encoding() == pb::KV_ENCODING_CACHEGEN && e.level() == level) stored = e.bytes();
        }
        CHECK(stored == sizes[c]);
      }
      int equal = 0, first = -1;
      for (size_t i = 0; i < kv.size(); ++i) {
        equal += kv[i] == text[i];
        if (kv[i] != text[i] && first < 0) first = static_cast<int>(i);
      }
      if (level == 0) {
        resynced_equal += ResyncedAgreement(services, id, ids, 0, text, kv);
        resynced_total += static_cast<int64_t>(text.size());
      }
      agree[level].first += equal;
      agree[level].second += static_cast<int64_t>(kv.size());
      line += " L" + std::to_string(level) + ":" + std::to_string(first);
    }
    WARN(file << ": first divergence from the text path per level (-1: none):" << line);
  }
  for (const auto& [level, c] : agree) {
    WARN("level " << level << " (" << local.codec().profile().levels[level].name << "): " << c.first
                  << "/" << c.second << " free-running greedy tokens equal to the text path");
  }
  WARN("level 0: " << resynced_equal << "/" << resynced_total
                   << " greedy tokens agree with the text path (resynchronized)");
  // Near-lossless level (issue #4): >= 99 % of the greedy tokens. Level 0 refines its 128 bins
  // by 4 raw bits per element (wire v3): 640/640 over the 20 documents, every answer identical
  // to the text path, as with raw fp16 (docs/kv-codec-measurements.md §2; 128 bins alone and
  // the 8-bit baseline: 633/640).
  CHECK(resynced_equal * 100 >= resynced_total * 99);
}

}  // namespace ctx::testing
