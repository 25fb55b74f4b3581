// The inference service end to end: the real ctxstream-inference binary over gRPC, compared
// with the engine library in-process (same model, same greedy ids).
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/codec/baselines.h"
#include "common/codec/codec.h"
#include "common/model/generate.h"
#include "common/model/model.h"
#include "common/rpc/kv_parts.h"
#include "common/tensor/dtype.h"
#include "common/tokenizer/tokenizer_api.h"
#include "ctxstream/v1/inference.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "tests/inference/fake_kvcache.h"
#include "tests/model/test_util.h"
#include "tests/support/child_process.h"

namespace ctx::testing {
namespace {

namespace v1 = ctxstream::v1;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- shared fixtures

struct Env {
  RunningService service;
  std::unique_ptr<v1::Inference::Stub> stub;
  std::unique_ptr<tokenizer::TokenizerApi> tok;
};

Env& GetEnv() {
  static Env* env = [] {
    auto* e = new Env{StartService("inference", {"--model_dir=" + SourcePath("models/tiny-llama"),
                                                 "--measure_speed=false"}),
                      nullptr, nullptr};
    e->stub = v1::Inference::NewStub(
        grpc::CreateChannel(e->service.grpc_address, grpc::InsecureChannelCredentials()));
    // The same tokenizer the server uses (in-process library reference).
    auto t = tokenizer::LoadTokenizer(SourcePath("models/tiny-llama"));
    INFO(t.status().ToString());
    REQUIRE(t.ok());
    e->tok = std::move(*t);
    return e;
  }();
  return *env;
}

std::vector<int32_t> Encode(const std::string& text, bool bos) {
  std::vector<int32_t> ids;
  std::string error;
  INFO(error);
  REQUIRE(GetEnv().tok->Encode(text, bos, &ids, &error));
  return ids;
}

std::string Decode(const std::vector<int32_t>& ids) {
  std::string text, error;
  REQUIRE(GetEnv().tok->Decode(ids, &text, &error));
  return text;
}

const model::Model& Model() { return model::testing::GetModel("tiny-llama"); }

codec::KvGeometry Geometry() {
  const auto& c = Model().config();
  return {c.num_layers, c.num_kv_heads, c.head_dim};
}

const codec::KvCodec& Codec() {
  static auto* c =
      new codec::KvCodec(*codec::KvCodec::CreateDefault(Model().fingerprint().bytes, Geometry()));
  return *c;
}

// ~600 tokens of real English (models/README.md), BOS first.
const std::vector<int32_t>& LongContext() {
  static std::vector<int32_t> ids = [] {
    std::ifstream in(SourcePath("models/README.md"));
    std::stringstream ss;
    ss << in.rdbuf();
    std::vector<int32_t> e = Encode(ss.str(), true);
    REQUIRE(e.size() >= 600);
    e.resize(600);
    return e;
  }();
  return ids;
}

std::vector<int32_t> Question() { return Encode("\nIn short, the model directory holds", false); }

// Greedy ids from the library in-process.
std::vector<int32_t> LibraryGreedy(const std::vector<int32_t>& context, int max_new) {
  model::KvCache cache = Model().NewKvCache();
  model::GenerateOptions opt;
  opt.max_new_tokens = max_new;
  opt.stop_at_eos = false;
  auto r = model::Generate(Model(), context, cache, opt);
  REQUIRE(r.ok());
  return r->tokens;
}

// The full-precision KV of `ids` computed by the library.
model::KvCache LibraryKv(const std::vector<int32_t>& ids) {
  model::KvCache cache = Model().NewKvCache(static_cast<int>(ids.size()));
  REQUIRE(Model().Forward(ids, cache, model::Logits::kNone, nullptr).ok());
  return cache;
}

v1::ChunkRef Ref(int index, int a, int b) {
  v1::ChunkRef r;
  r.set_chunk_index(index);
  r.set_token_begin(a);
  r.set_token_end(b);
  return r;
}

std::string RawBytes(const model::KvCache& cache, int a, int b, tensor::DType dtype) {
  auto bytes = cache.Export(a, b, dtype);
  REQUIRE(bytes.ok());
  return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

// ids: the context's token ids (the codec's repeat contexts); null codes every row order-0.
std::string CodecBytes(const model::KvCache& cache, int a, int b, int level,
                       const codec::KvCodec& c = Codec(),
                       const std::vector<int32_t>* ids = nullptr) {
  auto bytes = cache.Export(a, b, tensor::DType::kF32);
  REQUIRE(bytes.ok());
  codec::KvChunkView view;
  view.geometry = Geometry();
  view.token_begin = a;
  view.token_count = b - a;
  view.fingerprint = c.profile().fingerprint;
  view.data = std::span<const float>(reinterpret_cast<const float*>(bytes->data()),
                                     bytes->size() / sizeof(float));
  if (ids) view.token_ids = std::span<const int32_t>(*ids).subspan(a, b - a);
  auto enc = c.Encode(view, level);
  REQUIRE(enc.ok());
  return *enc;
}

// Segments of `chunk` tokens over `ids`; forms[i] (default text) per segment.
std::vector<v1::ContextSegment> Segments(const std::vector<int32_t>& ids, int chunk,
                                         const std::vector<v1::Form>& forms) {
  std::vector<v1::ContextSegment> out;
  for (int a = 0, i = 0; a < static_cast<int>(ids.size()); a += chunk, ++i) {
    const int b = std::min<int>(ids.size(), a + chunk);
    v1::ContextSegment s;
    s.set_token_begin(a);
    s.set_token_end(b);
    s.set_form(i < static_cast<int>(forms.size()) ? forms[i] : v1::FORM_TEXT);
    s.set_level(s.form() == v1::FORM_KV ? 0 : -1);
    s.mutable_tokens()->mutable_ids()->Assign(ids.begin() + a, ids.begin() + b);
    out.push_back(std::move(s));
  }
  return out;
}

struct GenResult {
  grpc::Status status;
  std::vector<int32_t> ids;
  std::string text;
  bool has_done = false;
  v1::GenerateDone done;
  std::vector<v1::ChunkDecision> decisions;
  double client_ttft = 0;
};

GenResult RunGenerate(const v1::GenerateStart& start,
                      const std::vector<v1::KvChunkPart>& parts = {},
                      const std::vector<v1::ContextSegment>& replans = {},
                      v1::Inference::Stub* stub = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = (stub ? stub : GetEnv().stub.get())->Generate(&ctx);
  const auto t0 = Clock::now();
  v1::GenerateRequest req;
  *req.mutable_start() = start;
  stream->Write(req);
  for (const auto& r : replans) {
    v1::GenerateRequest m;
    *m.mutable_replan() = r;
    stream->Write(m);
  }
  for (const auto& p : parts) {
    v1::GenerateRequest m;
    *m.mutable_kv() = p;
    if (!stream->Write(m)) break;
  }
  stream->WritesDone();
  GenResult out;
  v1::GenerateResponse resp;
  while (stream->Read(&resp)) {
    if (resp.has_token()) {
      if (out.ids.empty()) {
        out.client_ttft = std::chrono::duration<double>(Clock::now() - t0).count();
      }
      out.ids.push_back(resp.token().id());
      out.text += resp.token().text();
    } else if (resp.has_done()) {
      out.has_done = true;
      out.done = resp.done();
    } else if (resp.has_decision()) {
      out.decisions.push_back(resp.decision());
    }
  }
  out.status = stream->Finish();
  return out;
}

v1::GenerateStart StartOf(const std::vector<v1::ContextSegment>& segs,
                          const std::vector<int32_t>& question, int max_new) {
  v1::GenerateStart s;
  for (const auto& seg : segs) *s.add_segments() = seg;
  s.mutable_question()->mutable_ids()->Assign(question.begin(), question.end());
  s.mutable_sampling()->set_max_new_tokens(max_new);
  return s;
}

void AppendParts(std::vector<v1::KvChunkPart>* parts, const v1::ChunkRef& ref, v1::KvEncoding enc,
                 int level, const std::string& bytes) {
  for (auto& p : rpc::SplitKvChunk(ref, enc, level, bytes, 100 * 1024)) parts->push_back(p);
}

std::string Join(const std::vector<int32_t>& ids) {
  std::string out;
  for (int32_t id : ids) out += (out.empty() ? "" : " ") + std::to_string(id);
  return out;
}

double Agreement(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  if (a.empty()) return 0;
  size_t same = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) same += a[i] == b[i];
  return double(same) / double(std::max(a.size(), b.size()));
}

constexpr int kMaxNew = 12;

double MaxDiffF16(const std::string& a, const std::string& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i + 1 < a.size(); i += 2) {
    uint16_t x, y;
    std::memcpy(&x, a.data() + i, 2);
    std::memcpy(&y, b.data() + i, 2);
    // relative to max(1, |y|): one fp16 rounding step is 2^-10 of the value
    const double fy = tensor::HalfToFloat(y);
    m = std::max(m, std::fabs(tensor::HalfToFloat(x) - fy) / std::max(1.0, std::fabs(fy)));
  }
  return m;
}

// ---------------------------------------------------------------- unary RPCs

TEST_CASE("GetModelInfo reports the model the library loads") {
  Env& env = GetEnv();
  grpc::ClientContext ctx;
  v1::ModelInfo info;
  REQUIRE(env.stub->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info).ok());
  const auto& c = Model().config();
  CHECK(info.name() == "tiny-llama");
  const auto& fp = Model().fingerprint().bytes;
  CHECK(info.fingerprint() == std::string(reinterpret_cast<const char*>(fp.data()), fp.size()));
  CHECK(info.geometry().num_layers() == uint32_t(c.num_layers));
  CHECK(info.geometry().num_kv_heads() == uint32_t(c.num_kv_heads));
  CHECK(info.geometry().head_dim() == uint32_t(c.head_dim));
  CHECK(info.geometry().dtype() == v1::DTYPE_F16);
  CHECK(info.vocab_size() == uint32_t(c.vocab_size));
  CHECK(info.max_context_tokens() == uint32_t(c.max_position_embeddings));
  CHECK(info.bos_id() == env.tok->bos_id());
  CHECK(info.eos_id() == env.tok->eos_id());
  CHECK(info.prefill_speed_size() == 0);  // --measure_speed=false
}

TEST_CASE("Tokenize and Detokenize round-trip") {
  Env& env = GetEnv();
  const std::string text = "Control groups organize processes hierarchically. Ünïcödé ok.";
  v1::TokenizeRequest treq;
  treq.set_text(text);
  treq.set_add_bos(true);
  v1::TokenizeResponse tresp;
  grpc::ClientContext c1;
  REQUIRE(env.stub->Tokenize(&c1, treq, &tresp).ok());
  CHECK(std::vector<int32_t>(tresp.tokens().ids().begin(), tresp.tokens().ids().end()) ==
        Encode(text, true));
  CHECK(tresp.tokens().ids(0) == env.tok->bos_id());

  v1::DetokenizeRequest dreq;
  *dreq.mutable_tokens() = tresp.tokens();
  v1::DetokenizeResponse dresp;
  grpc::ClientContext c2;
  REQUIRE(env.stub->Detokenize(&c2, dreq, &dresp).ok());
  CHECK(dresp.text() == text);

  dreq.mutable_tokens()->add_ids(1 << 20);  // out of vocabulary
  grpc::ClientContext c3;
  CHECK(env.stub->Detokenize(&c3, dreq, &dresp).error_code() == grpc::INVALID_ARGUMENT);
}

// ---------------------------------------------------------------- Prefill

TEST_CASE("Prefill streams chunks that reassemble to the library's KV") {
  Env& env = GetEnv();
  const std::vector<int32_t> ids(LongContext().begin(), LongContext().begin() + 300);
  const int chunk = 128;
  // The library, chunk by chunk as the service computes it.
  model::KvCache lib = Model().NewKvCache(300);
  for (int a = 0; a < 300; a += chunk) {
    const int b = std::min(300, a + chunk);
    REQUIRE(Model()
                .Forward(std::span<const int32_t>(ids).subspan(a, b - a), lib, model::Logits::kNone,
                         nullptr)
                .ok());
  }
  SECTION("F32 from scratch") {
    v1::PrefillRequest req;
    req.mutable_tokens()->mutable_ids()->Assign(ids.begin(), ids.end());
    req.set_chunk_tokens(chunk);
    req.set_export_dtype(v1::DTYPE_F32);
    req.set_context_id("ctx-1");
    grpc::ClientContext ctx;
    auto reader = env.stub->Prefill(&ctx, req);
    v1::PrefillResponse resp;
    rpc::KvPartAssembler assembler(1 << 30);
    std::vector<rpc::KvChunk> chunks;
    bool first = true;
    while (reader->Read(&resp)) {
      if (first) {
        CHECK(resp.geometry().num_layers() == 6);
        CHECK(resp.geometry().dtype() == v1::DTYPE_F32);
        first = false;
      }
      auto r = assembler.Add(resp.part());
      REQUIRE(r.ok());
      if (r->has_value()) {
        CHECK(resp.prefill_seconds() > 0);
        chunks.push_back(**r);
      }
    }
    REQUIRE(reader->Finish().ok());
    REQUIRE(chunks.size() == 3);
    for (size_t i = 0; i < chunks.size(); ++i) {
      const int a = int(i) * chunk, b = std::min(300, a + chunk);
      CHECK(chunks[i].ref.context_id() == "ctx-1");
      CHECK(chunks[i].ref.chunk_index() == i);
      CHECK(chunks[i].ref.token_begin() == uint32_t(a));
      CHECK(chunks[i].ref.token_end() == uint32_t(b));
      CHECK(chunks[i].ref.chunk_hash().empty());
      const std::string want = RawBytes(lib, a, b, tensor::DType::kF32);
      REQUIRE(chunks[i].bytes.size() == want.size());
      const float* x = reinterpret_cast<const float*>(chunks[i].bytes.data());
      const float* y = reinterpret_cast<const float*>(want.data());
      double max_diff = 0;
      for (size_t k = 0; k < want.size() / 4; ++k) {
        max_diff = std::max(max_diff, double(std::fabs(x[k] - y[k])));
      }
      CHECK(max_diff < 1e-4);  // same engine; the server may use other BLAS kernels
    }
  }
  SECTION("F16 on top of a KV prefix") {
    v1::PrefillRequest req;
    req.mutable_tokens()->mutable_ids()->Assign(ids.begin(), ids.end());
    req.set_chunk_tokens(chunk);
    req.set_prefix_tokens(chunk);
    std::vector<v1::KvChunkPart> parts;
    AppendParts(&parts, Ref(0, 0, chunk), v1::KV_ENCODING_RAW, -1,
                RawBytes(lib, 0, chunk, tensor::DType::kF32));
    for (auto& p : parts) *req.add_prefix() = p;
    grpc::ClientContext ctx;
    auto reader = env.stub->Prefill(&ctx, req);
    v1::PrefillResponse resp;
    rpc::KvPartAssembler assembler(1 << 30);
    std::vector<rpc::KvChunk> chunks;
    while (reader->Read(&resp)) {
      auto r = assembler.Add(resp.part());
      REQUIRE(r.ok());
      if (r->has_value()) chunks.push_back(**r);
    }
    REQUIRE(reader->Finish().ok());
    REQUIRE(chunks.size() == 2);
    CHECK(chunks[0].ref.token_begin() == uint32_t(chunk));
    CHECK(chunks[0].ref.chunk_index() == 1u);
    // F16 of (nearly) the same floats: equal up to one rounding step.
    CHECK(MaxDiffF16(chunks[0].bytes, RawBytes(lib, chunk, 2 * chunk, tensor::DType::kF16)) < 2e-3);
    CHECK(MaxDiffF16(chunks[1].bytes, RawBytes(lib, 2 * chunk, 300, tensor::DType::kF16)) < 2e-3);
  }
}

// ---------------------------------------------------------------- Generate

TEST_CASE("Generate over text reproduces the golden and the library's greedy ids") {
  const std::vector<int32_t> golden_ids = model::testing::Golden("tiny-llama").Ids("input_ids");
  GenResult r = RunGenerate(StartOf(Segments(golden_ids, 64, {}), {}, 8));
  REQUIRE(r.status.ok());
  CHECK(r.ids == std::vector<int32_t>{668, 395, 8129, 8085, 2149, 312, 2149, 8103});
  // Streamed pieces continue the prompt: prompt text + pieces = text of prompt + generated.
  std::vector<int32_t> both = golden_ids;
  both.insert(both.end(), r.ids.begin(), r.ids.end());
  CHECK(Decode(golden_ids) + r.text == Decode(both));
  REQUIRE(r.has_done);
  CHECK(r.done.context_tokens() == 64u);
  CHECK(r.done.prefilled_tokens() == 64u);
  CHECK(r.done.kv_tokens() == 0u);
  CHECK(r.done.generated_tokens() == 8u);
  CHECK(r.done.finish_reason() == "length");
  CHECK(r.done.timings().ttft_seconds() > 0);
  CHECK(r.done.timings().total_seconds() >= r.done.timings().ttft_seconds());

  // Metrics of the request (docs/metrics.md, InferenceMetrics).
  const std::string metrics = HttpGet(GetEnv().service.metrics_address, "/metrics");
  CHECK(metrics.find("ctxstream_inference_decode_tokens_total") != std::string::npos);
  CHECK(metrics.find("ctxstream_inference_ttft_seconds_count{form=\"text\"}") != std::string::npos);
  CHECK(metrics.find("ctxstream_inference_prefill_tokens_total{form=\"text\"}") !=
        std::string::npos);

  // context_text + question_text, tokenized by the service.
  v1::GenerateStart s;
  s.set_context_text("Control groups are a mechanism to organize processes");
  s.set_question_text(" hierarchically and");
  s.mutable_sampling()->set_max_new_tokens(6);
  GenResult t = RunGenerate(s);
  REQUIRE(t.status.ok());
  std::vector<int32_t> ctx = Encode(s.context_text(), true);
  const auto q = Encode(s.question_text(), false);
  ctx.insert(ctx.end(), q.begin(), q.end());
  CHECK(t.ids == LibraryGreedy(ctx, 6));
}

TEST_CASE("Generate over KV chunks gives the same greedy tokens as over text") {
  const std::vector<int32_t>& ids = LongContext();  // 600 tokens: chunks 256, 256, 88
  const std::vector<int32_t> q = Question();
  std::vector<int32_t> all = ids;
  all.insert(all.end(), q.begin(), q.end());
  const std::vector<int32_t> lib = LibraryGreedy(all, kMaxNew);
  const model::KvCache kv = LibraryKv(ids);

  GenResult text = RunGenerate(StartOf(Segments(ids, 256, {}), q, kMaxNew));
  REQUIRE(text.status.ok());
  CHECK(text.ids == lib);

  const std::vector<v1::Form> all_kv = {v1::FORM_KV, v1::FORM_KV, v1::FORM_KV};
  auto run_kv = [&](v1::KvEncoding enc, int level, tensor::DType dtype) {
    std::vector<v1::KvChunkPart> parts;
    for (int a = 0, i = 0; a < 600; a += 256, ++i) {
      const int b = std::min(600, a + 256);
      AppendParts(&parts, Ref(i, a, b), enc, level,
                  enc == v1::KV_ENCODING_RAW ? RawBytes(kv, a, b, dtype)
                                             : CodecBytes(kv, a, b, level, Codec(), &ids));
    }
    return RunGenerate(StartOf(Segments(ids, 256, all_kv), q, kMaxNew), parts);
  };
  SECTION("RAW F32: identical") {
    GenResult r = run_kv(v1::KV_ENCODING_RAW, -1, tensor::DType::kF32);
    REQUIRE(r.status.ok());
    CHECK(r.ids == text.ids);
    CHECK(r.done.kv_tokens() == 600u);
    CHECK(r.done.prefilled_tokens() == 0u);
    REQUIRE(r.done.bytes_size() == 1);
    CHECK(r.done.bytes(0).form() == v1::FORM_KV);
    CHECK(r.done.bytes(0).chunks() == 3u);
    CHECK(r.done.bytes(0).bytes() == 600ull * 6 * 2 * 128 * 4);
  }
  SECTION("RAW F16: >= 99 %") {
    GenResult r = run_kv(v1::KV_ENCODING_RAW, -1, tensor::DType::kF16);
    REQUIRE(r.status.ok());
    CHECK(Agreement(r.ids, text.ids) >= 0.99);
  }
  SECTION("CACHEGEN: levels OB and OC-r0 (default) >= 99 %, every level decodes") {
    // Level 0 (U32: 32 bins everywhere) is not the best quality on this model: its deep keys
    // get fewer bins than the calibrated tables give them (kv-anchors.md), so it is reported,
    // not asserted. Levels 3.. do not send layer 0: it is recomputed from the ids.
    for (int level = 0; level < 6; ++level) {
      GenResult r = run_kv(v1::KV_ENCODING_CACHEGEN, level, tensor::DType::kF32);
      REQUIRE(r.status.ok());
      CHECK(r.ids.size() == size_t(kMaxNew));
      CHECK(r.done.kv_tokens() == 600u);
      CHECK(r.done.timings().decode_seconds() > 0);
      WARN("CACHEGEN level " << level << ": greedy agreement with text "
                             << Agreement(r.ids, text.ids) << " (ids " << Join(r.ids) << " vs text "
                             << Join(text.ids) << ")");
      // This prompt has a near-tie at its first answer token: the two finest levels (0, 1)
      // both pick the runner-up (268) there, so their free-running answers differ from the
      // start. The coarser calibrated levels keep the text path's answer and are asserted;
      // exact agreement of every level with the in-process libraries is tests/kvquality's.
      if (level == 2 || level == 3) CHECK(Agreement(r.ids, text.ids) >= 0.99);
    }
  }
  SECTION("QUANT8 baseline and the codec's raw-fp16 container") {
    for (v1::KvEncoding enc : {v1::KV_ENCODING_QUANT8, v1::KV_ENCODING_RAW}) {
      std::vector<v1::KvChunkPart> parts;
      for (int a = 0, i = 0; a < 600; a += 256, ++i) {
        const int b = std::min(600, a + 256);
        auto f = kv.Export(a, b, tensor::DType::kF32).value();
        codec::KvChunkView view;
        view.geometry = Geometry();
        view.token_begin = a;
        view.token_count = b - a;
        view.fingerprint = Model().fingerprint().bytes;
        view.data = std::span<const float>(reinterpret_cast<const float*>(f.data()), f.size() / 4);
        auto bytes =
            enc == v1::KV_ENCODING_QUANT8 ? codec::EncodeInt8(view) : codec::EncodeRawF16(view);
        REQUIRE(bytes.ok());
        AppendParts(&parts, Ref(i, a, b), enc, -1, *bytes);
      }
      GenResult r = RunGenerate(StartOf(Segments(ids, 256, all_kv), q, kMaxNew), parts);
      REQUIRE(r.status.ok());
      CHECK(Agreement(r.ids, text.ids) >= 0.99);
      CHECK(r.done.kv_tokens() == 600u);
    }
  }
  SECTION("A mix: first chunk KV, the rest text") {
    std::vector<v1::KvChunkPart> parts;
    AppendParts(&parts, Ref(0, 0, 256), v1::KV_ENCODING_RAW, -1,
                RawBytes(kv, 0, 256, tensor::DType::kF32));
    GenResult r = RunGenerate(StartOf(Segments(ids, 256, {v1::FORM_KV}), q, kMaxNew), parts);
    REQUIRE(r.status.ok());
    CHECK(r.ids == text.ids);
    CHECK(r.done.kv_tokens() == 256u);
    CHECK(r.done.prefilled_tokens() == 344u);
  }
  SECTION("replan turns a pending KV segment into text") {
    std::vector<v1::KvChunkPart> parts;
    AppendParts(&parts, Ref(0, 0, 256), v1::KV_ENCODING_RAW, -1,
                RawBytes(kv, 0, 256, tensor::DType::kF32));
    auto segs = Segments(ids, 256, all_kv);
    v1::ContextSegment r1 = segs[1], r2 = segs[2];
    r1.set_form(v1::FORM_TEXT);
    r2.set_form(v1::FORM_TEXT);
    GenResult r3 = RunGenerate(StartOf(segs, q, kMaxNew), parts, {r1, r2});
    REQUIRE(r3.status.ok());
    CHECK(r3.ids == text.ids);
    CHECK(r3.done.kv_tokens() == 256u);
  }
}

TEST_CASE("Bad Generate requests get clear codes and the server keeps serving") {
  const std::vector<int32_t> ids(LongContext().begin(), LongContext().begin() + 40);
  const model::KvCache kv = LibraryKv(ids);
  auto code_of = [](const v1::GenerateStart& s, const std::vector<v1::KvChunkPart>& parts = {}) {
    GenResult r = RunGenerate(s, parts);
    INFO(r.status.error_message());
    CHECK(!r.status.error_message().empty());
    return r.status.error_code();
  };
  SECTION("empty context") {
    v1::GenerateStart s;
    s.mutable_sampling()->set_max_new_tokens(2);
    CHECK(code_of(s) == grpc::INVALID_ARGUMENT);
  }
  SECTION("out-of-vocabulary id") {
    auto segs = Segments(ids, 64, {});
    segs[0].mutable_tokens()->set_ids(3, 1 << 20);
    CHECK(code_of(StartOf(segs, {}, 2)) == grpc::INVALID_ARGUMENT);
  }
  SECTION("too long for the model") {
    CHECK(code_of(StartOf(Segments(ids, 64, {}), {}, 2040)) == grpc::INVALID_ARGUMENT);
  }
  SECTION("segments not tiling") {
    auto segs = Segments(ids, 16, {});
    segs[1].set_token_begin(17);
    CHECK(code_of(StartOf(segs, {}, 2)) == grpc::INVALID_ARGUMENT);
    auto gap = Segments(ids, 16, {});
    gap.erase(gap.begin() + 1);
    CHECK(code_of(StartOf(gap, {}, 2)) == grpc::INVALID_ARGUMENT);
  }
  SECTION("chunk from another model (fingerprint)") {
    codec::ModelFingerprint other = Model().fingerprint().bytes;
    other[0] ^= 0xff;
    auto other_codec = codec::KvCodec::CreateDefault(other, Geometry());
    REQUIRE(other_codec.ok());
    std::vector<v1::KvChunkPart> parts;
    AppendParts(&parts, Ref(0, 0, 40), v1::KV_ENCODING_CACHEGEN, 0,
                CodecBytes(kv, 0, 40, 0, *other_codec));
    CHECK(code_of(StartOf(Segments(ids, 64, {v1::FORM_KV}), {}, 2), parts) ==
          grpc::FAILED_PRECONDITION);
  }
  SECTION("truncated chunk") {
    std::string bytes = CodecBytes(kv, 0, 40, 0);
    bytes.resize(bytes.size() - 7);
    std::vector<v1::KvChunkPart> parts;
    AppendParts(&parts, Ref(0, 0, 40), v1::KV_ENCODING_CACHEGEN, 0, bytes);
    CHECK(code_of(StartOf(Segments(ids, 64, {v1::FORM_KV}), {}, 2), parts) ==
          grpc::INVALID_ARGUMENT);
    std::vector<v1::KvChunkPart> raw;
    AppendParts(&raw, Ref(0, 0, 40), v1::KV_ENCODING_RAW, -1,
                RawBytes(kv, 0, 40, tensor::DType::kF16).substr(0, 1000));
    CHECK(code_of(StartOf(Segments(ids, 64, {v1::FORM_KV}), {}, 2), raw) == grpc::INVALID_ARGUMENT);
  }
  SECTION("KV never sent") {
    CHECK(code_of(StartOf(Segments(ids, 64, {v1::FORM_KV}), {}, 2)) == grpc::INVALID_ARGUMENT);
  }
  // Still serving.
  GenResult ok = RunGenerate(StartOf(Segments(ids, 64, {}), {}, 3));
  REQUIRE(ok.status.ok());
  CHECK(ok.ids == LibraryGreedy(ids, 3));
}

TEST_CASE("Cancelling a Generate frees the worker for the next request") {
  const std::vector<int32_t> ids(LongContext().begin(), LongContext().begin() + 32);
  {
    grpc::ClientContext ctx;
    auto stream = GetEnv().stub->Generate(&ctx);
    v1::GenerateRequest req;
    *req.mutable_start() = StartOf(Segments(ids, 32, {}), {}, 1900);
    REQUIRE(stream->Write(req));
    v1::GenerateResponse resp;
    int tokens = 0;
    while (tokens < 3 && stream->Read(&resp)) tokens += resp.has_token();
    REQUIRE(tokens == 3);
    ctx.TryCancel();
    CHECK(stream->Finish().error_code() == grpc::CANCELLED);
  }
  // With --compute_threads=1 this only finishes if the cancelled request stopped computing.
  const auto t0 = Clock::now();
  GenResult r = RunGenerate(StartOf(Segments(ids, 32, {}), {}, 4));
  REQUIRE(r.status.ok());
  CHECK(r.ids.size() == 4u);
  // 1900 tokens would take far longer than this on this machine.
  CHECK(std::chrono::duration<double>(Clock::now() - t0).count() < 20.0);
}

// ---------------------------------------------------------------- KvSource

struct StoredContext {
  FakeKvCache kvcache;
  std::string address;
};

std::unique_ptr<StoredContext> StoreContext(const model::KvCache& kv, int n, int drop = -1,
                                            const std::vector<int32_t>* ids = nullptr) {
  auto s = std::make_unique<StoredContext>();
  for (int a = 0, i = 0; a < n; a += 256, ++i) {
    const int b = std::min(n, a + 256);
    for (int level = 0; level < 6; ++level)
      s->kvcache.AddChunk(i, a, b, level, CodecBytes(kv, a, b, level, Codec(), ids));
    s->kvcache.AddChunk(i, a, b, -1, RawBytes(kv, a, b, tensor::DType::kF32));  // RAW baseline
  }
  if (drop >= 0) s->kvcache.DropChunk(drop);
  s->address = s->kvcache.Start();
  return s;
}

// head > 0: a hybrid plan, as the controller sends it: chunks [0, head) as text (segment and
// ChunkPlan FORM_TEXT), prefilled while the rest is fetched.
v1::GenerateStart KvSourceStart(const std::vector<int32_t>& ids, const std::vector<int32_t>& q,
                                const std::string& address, bool adapt, int plan_level = 3,
                                int head = 0) {
  std::vector<v1::Form> forms;
  for (int i = 0; i < 3; ++i) forms.push_back(i < head ? v1::FORM_TEXT : v1::FORM_KV);
  v1::GenerateStart s = StartOf(Segments(ids, 256, forms), q, kMaxNew);
  v1::KvSource* src = s.mutable_kv_source();
  src->set_kvcache_address(address);
  src->set_context_id("doc");
  src->set_tenant("t");
  for (int i = 0; i < 3; ++i) {
    v1::ChunkPlan* p = src->add_plan();
    p->set_chunk_index(i);
    p->set_form(i < head ? v1::FORM_TEXT : v1::FORM_KV);
    p->set_level(i < head ? -1 : plan_level);  // default 3: OC-r0, the codec's default level
  }
  src->set_adapt(adapt);
  if (adapt) {
    v1::AdaptationParams* ap = src->mutable_adaptation();
    ap->set_bandwidth_estimate_bytes_per_second(1e9);
    ap->set_slo_ttft_seconds(30);
    // Rules out levels 0, 1, 4 and 5 below: this prompt's first answer token is a near-tie that
    // the two finest default levels (U32, OA) flip (see "Generate over KV chunks" above).
    ap->set_max_quality_loss(0.01);
    for (double loss : {0.05, 0.02, 0.004, 0.008, 0.012, 0.03}) ap->add_level_quality_loss(loss);
  }
  return s;
}

TEST_CASE("KvSource: the inference node fetches, re-plans and falls back by itself") {
  const std::vector<int32_t>& ids = LongContext();
  const std::vector<int32_t> q = Question();
  const model::KvCache kv = LibraryKv(ids);
  std::vector<int32_t> all = ids;
  all.insert(all.end(), q.begin(), q.end());
  const std::vector<int32_t> lib = LibraryGreedy(all, kMaxNew);

  SECTION("plan, no adaptation") {
    auto stored = StoreContext(kv, 600, -1, &ids);
    GenResult r = RunGenerate(KvSourceStart(ids, q, stored->address, false));
    INFO(r.status.error_message());
    REQUIRE(r.status.ok());
    CHECK(Agreement(r.ids, lib) >= 0.99);
    CHECK(r.done.kv_tokens() == 600u);
    CHECK_FALSE(r.done.fell_back());
    REQUIRE(r.decisions.size() == 3);
    for (const auto& d : r.decisions) {
      CHECK(d.form() == v1::FORM_KV);
      CHECK(d.level() == 3);
    }
    CHECK(r.decisions[1].measured_bytes_per_second() > 0);
    CHECK(stored->kvcache.fetch_requests() == 3);
  }
  SECTION("adaptive re-planning at a generous SLO keeps KV") {
    auto stored = StoreContext(kv, 600, -1, &ids);
    GenResult r = RunGenerate(KvSourceStart(ids, q, stored->address, true));
    INFO(r.status.error_message());
    REQUIRE(r.status.ok());
    REQUIRE(r.decisions.size() == 3);
    for (const auto& d : r.decisions) {
      INFO(d.reason());
      CHECK(d.form() == v1::FORM_KV);
      CHECK(d.level() >= 2);
      CHECK(d.level() <= 3);
      CHECK(d.bandwidth_estimate_bytes_per_second() > 0);
    }
    CHECK(r.done.kv_tokens() == 600u);
    CHECK_FALSE(r.done.fell_back());
    CHECK(Agreement(r.ids, lib) >= 0.99);
  }
  SECTION("a lost chunk falls back to text and the query succeeds") {
    // Chunk 0 as RAW F32 (exact), so the text-prefilled rest must give the text path's ids.
    auto stored = StoreContext(kv, 600, /*drop=*/1, &ids);
    GenResult r = RunGenerate(KvSourceStart(ids, q, stored->address, false, /*plan_level=*/-1));
    INFO(r.status.error_message());
    REQUIRE(r.status.ok());
    CHECK(r.done.fell_back());
    CHECK(r.done.fallback_reason().find("chunk 1") != std::string::npos);
    CHECK(r.done.kv_tokens() == 256u);
    CHECK(r.done.prefilled_tokens() == 344u);
    CHECK(r.ids == lib);
  }
  SECTION("hybrid: chunk 0 prefilled from text while chunks 1-2 are fetched") {
    // RAW F32 tail (exact): the ids must be the text path's.
    auto stored = StoreContext(kv, 600);
    GenResult r = RunGenerate(KvSourceStart(ids, q, stored->address, false, -1, /*head=*/1));
    INFO(r.status.error_message());
    REQUIRE(r.status.ok());
    CHECK_FALSE(r.done.fell_back());
    CHECK(r.done.prefilled_tokens() == 256u);
    CHECK(r.done.kv_tokens() == 344u);
    CHECK(stored->kvcache.fetch_requests() == 2);  // the head is not fetched
    REQUIRE(r.decisions.size() == 3);
    CHECK(r.decisions[0].form() == v1::FORM_TEXT);
    CHECK(r.decisions[1].form() == v1::FORM_KV);
    CHECK(r.decisions[2].form() == v1::FORM_KV);
    CHECK(r.ids == lib);
  }
  SECTION("hybrid with adaptation: the head stays text, the tail is re-planned as KV") {
    auto stored = StoreContext(kv, 600);
    GenResult r = RunGenerate(KvSourceStart(ids, q, stored->address, true, 3, /*head=*/1));
    INFO(r.status.error_message());
    REQUIRE(r.status.ok());
    CHECK_FALSE(r.done.fell_back());
    REQUIRE(r.decisions.size() == 3);
    CHECK(r.decisions[0].form() == v1::FORM_TEXT);
    CHECK_THAT(r.decisions[0].reason(), Catch::Contains("text head"));
    for (int i = 1; i < 3; ++i) {
      INFO(r.decisions[i].reason());
      CHECK(r.decisions[i].form() == v1::FORM_KV);
      CHECK(r.decisions[i].level() >= 2);
      CHECK(r.decisions[i].level() <= 3);
    }
    CHECK(r.done.kv_tokens() == 344u);
    CHECK(Agreement(r.ids, lib) >= 0.99);
  }
  SECTION("hybrid with a lost tail chunk falls back to text for it") {
    auto stored = StoreContext(kv, 600, /*drop=*/2);
    GenResult r = RunGenerate(KvSourceStart(ids, q, stored->address, false, -1, /*head=*/1));
    INFO(r.status.error_message());
    REQUIRE(r.status.ok());
    CHECK(r.done.fell_back());
    CHECK(r.done.fallback_reason().find("chunk 2") != std::string::npos);
    CHECK(r.done.kv_tokens() == 256u);         // chunk 1
    CHECK(r.done.prefilled_tokens() == 344u);  // chunk 0 (head) + chunk 2 (fallback)
    CHECK(r.ids == lib);
  }
  SECTION("an unreachable kvcache falls back to text") {
    GenResult r = RunGenerate(KvSourceStart(ids, q, "127.0.0.1:1", false));
    INFO(r.status.error_message());
    REQUIRE(r.status.ok());
    CHECK(r.done.fell_back());
    CHECK(r.done.kv_tokens() == 0u);
    CHECK(r.ids == lib);
  }
}

// Not a test: `./build/tests/inference/test_inference "[.bench]"` prints TTFT for a 1024-token
// context delivered as text, RAW F16 KV and CACHEGEN KV (chunks made in-process, sent by the
// test client over loopback).
// ---------------------------------------------------------------- raw KV dtypes

tensor::DType TensorDType(v1::DType d) {
  return d == v1::DTYPE_BF16  ? tensor::DType::kBF16
         : d == v1::DTYPE_F16 ? tensor::DType::kF16
                              : tensor::DType::kF32;
}

std::vector<float> ToFloats(const std::string& bytes, tensor::DType dtype) {
  std::vector<float> out(bytes.size() / tensor::DTypeSize(dtype));
  REQUIRE(tensor::ConvertToFloat(dtype, bytes.data(), out.size(), out.data()).ok());
  return out;
}

// Largest |x - y| / max(1, |y|).
double MaxRelDiff(const std::vector<float>& x, const std::vector<float>& y) {
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    m = std::max(m, std::fabs(double(x[i]) - y[i]) / std::max(1.0, std::fabs(double(y[i]))));
  }
  return m;
}

// Prefill over gRPC; every response must say `want` as its dtype.
std::vector<rpc::KvChunk> PrefillChunks(const v1::PrefillRequest& req, v1::DType want) {
  grpc::ClientContext ctx;
  auto reader = GetEnv().stub->Prefill(&ctx, req);
  v1::PrefillResponse resp;
  rpc::KvPartAssembler assembler(1 << 30);
  std::vector<rpc::KvChunk> chunks;
  bool first = true;
  while (reader->Read(&resp)) {
    CHECK(resp.dtype() == want);
    if (first) CHECK(resp.geometry().dtype() == want);
    first = false;
    auto r = assembler.Add(resp.part());
    REQUIRE(r.ok());
    if (r->has_value()) chunks.push_back(**r);
  }
  grpc::Status st = reader->Finish();
  INFO(st.error_message());
  REQUIRE(st.ok());
  return chunks;
}

TEST_CASE("RAW BF16 and F32 chunks keep their dtype through Prefill export and import") {
  const std::vector<int32_t> ids(LongContext().begin(), LongContext().begin() + 300);
  const int chunk = 128, prefix = 256;
  const std::vector<int32_t> q = Question();
  for (const v1::DType dt : {v1::DTYPE_BF16, v1::DTYPE_F32}) {
    const tensor::DType tdt = TensorDType(dt);
    INFO("dtype " << tensor::DTypeName(tdt));
    // 1. Export: the server's chunks of [0, 256) in `dt`, against the library's.
    v1::PrefillRequest ex;
    ex.mutable_tokens()->mutable_ids()->Assign(ids.begin(), ids.begin() + prefix);
    ex.set_chunk_tokens(chunk);
    ex.set_export_dtype(dt);
    const std::vector<rpc::KvChunk> exported = PrefillChunks(ex, dt);
    REQUIRE(exported.size() == 2);
    const model::KvCache lib = LibraryKv(std::vector<int32_t>(ids.begin(), ids.begin() + prefix));
    for (int i = 0; i < 2; ++i) {
      const std::string want = RawBytes(lib, i * chunk, (i + 1) * chunk, tdt);
      REQUIRE(exported[i].bytes.size() == want.size());  // 2 B/element BF16, 4 B F32
      // The same floats rounded (BF16: one step is 2^-8 relative).
      CHECK(MaxRelDiff(ToFloats(exported[i].bytes, tdt), ToFloats(want, tdt)) <
            (dt == v1::DTYPE_BF16 ? 1e-2 : 1e-4));
    }

    // 2. Import as Prefill's prefix, declared: the next chunk equals the library's computed on
    // top of exactly those bytes.
    v1::PrefillRequest im;
    im.mutable_tokens()->mutable_ids()->Assign(ids.begin(), ids.end());
    im.set_chunk_tokens(chunk);
    im.set_export_dtype(v1::DTYPE_F32);
    im.set_prefix_tokens(prefix);
    im.set_prefix_dtype(dt);
    std::vector<v1::KvChunkPart> parts;
    for (int i = 0; i < 2; ++i)
      AppendParts(&parts, exported[i].ref, v1::KV_ENCODING_RAW, -1, exported[i].bytes);
    for (const auto& p : parts) *im.add_prefix() = p;
    const std::vector<rpc::KvChunk> next = PrefillChunks(im, v1::DTYPE_F32);
    REQUIRE(next.size() == 1);
    CHECK(next[0].ref.token_begin() == uint32_t(prefix));
    auto on_bytes = [&](tensor::DType as) {
      model::KvCache c = Model().NewKvCache(300);
      for (int i = 0; i < 2; ++i) {
        const std::string& b = exported[i].bytes;
        REQUIRE(c.Import(i * chunk, (i + 1) * chunk, as,
                         std::span<const std::byte>(reinterpret_cast<const std::byte*>(b.data()),
                                                    b.size()))
                    .ok());
      }
      REQUIRE(Model()
                  .Forward(std::span<const int32_t>(ids).subspan(prefix), c, model::Logits::kNone,
                           nullptr)
                  .ok());
      return ToFloats(RawBytes(c, prefix, 300, tensor::DType::kF32), tensor::DType::kF32);
    };
    const std::vector<float> got = ToFloats(next[0].bytes, tensor::DType::kF32);
    CHECK(MaxRelDiff(got, on_bytes(tdt)) < 1e-4);
    if (dt == v1::DTYPE_BF16) {
      // The same bytes read as F16 (what an undeclared 2-byte chunk means) are another KV.
      CHECK(MaxRelDiff(got, on_bytes(tensor::DType::kF16)) > 1e-2);
    }

    // 3. Generate over the exported chunks as KV segments declaring `dt` + text on top: the
    // library's greedy ids on a cache holding exactly those bytes.
    std::vector<v1::ContextSegment> segs =
        Segments(ids, chunk, {v1::FORM_KV, v1::FORM_KV, v1::FORM_TEXT});
    for (int i = 0; i < 2; ++i) segs[i].set_kv_dtype(dt);
    GenResult r = RunGenerate(StartOf(segs, q, kMaxNew), parts);
    INFO(r.status.error_message());
    REQUIRE(r.status.ok());
    model::KvCache c = Model().NewKvCache();
    for (int i = 0; i < 2; ++i) {
      const std::string& b = exported[i].bytes;
      REQUIRE(c.Import(i * chunk, (i + 1) * chunk, tdt,
                       std::span<const std::byte>(reinterpret_cast<const std::byte*>(b.data()),
                                                  b.size()))
                  .ok());
    }
    std::vector<int32_t> all = ids;
    all.insert(all.end(), q.begin(), q.end());
    model::GenerateOptions opt;
    opt.max_new_tokens = kMaxNew;
    opt.stop_at_eos = false;
    auto want = model::Generate(Model(), all, c, opt);
    REQUIRE(want.ok());
    CHECK(r.ids == want->tokens);
    CHECK(r.done.kv_tokens() == uint32_t(prefix));
  }

  SECTION("a declared dtype the bytes do not match, and an unknown dtype, are rejected") {
    const model::KvCache lib = LibraryKv(std::vector<int32_t>(ids.begin(), ids.begin() + chunk));
    std::vector<v1::ContextSegment> segs =
        Segments(std::vector<int32_t>(ids.begin(), ids.begin() + chunk), chunk, {v1::FORM_KV});
    segs[0].set_kv_dtype(v1::DTYPE_F32);
    std::vector<v1::KvChunkPart> parts;
    AppendParts(&parts, Ref(0, 0, chunk), v1::KV_ENCODING_RAW, -1,
                RawBytes(lib, 0, chunk, tensor::DType::kBF16));
    GenResult bad = RunGenerate(StartOf(segs, q, 2), parts);
    CHECK(bad.status.error_code() == grpc::INVALID_ARGUMENT);
    CHECK(bad.status.error_message().find("declared F32") != std::string::npos);

    segs[0].set_kv_dtype(static_cast<v1::DType>(9));
    GenResult unknown = RunGenerate(StartOf(segs, q, 2), parts);
    CHECK(unknown.status.error_code() == grpc::INVALID_ARGUMENT);
    CHECK(unknown.status.error_message().find("kv_dtype") != std::string::npos);
  }
}

// ---------------------------------------------------------------- inbound flow control

// Value of an unlabelled metric in Prometheus text format (-1 when absent).
double MetricValue(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

TEST_CASE("Generate stops reading KV parts while its unprocessed ones fill the budget") {
  constexpr int kBudget = 64 * 1024, kPart = 16 * 1024;
  // A server of its own with a small budget; its metrics belong to this test alone.
  RunningService server = StartService(
      "inference", {"--model_dir=" + SourcePath("models/tiny-llama"), "--measure_speed=false",
                    "--max_inbound_kv_bytes=" + std::to_string(kBudget)});
  const RunningService* service = &server;
  auto stub = v1::Inference::NewStub(
      grpc::CreateChannel(service->grpc_address, grpc::InsecureChannelCredentials()));

  // 300 tokens of text (the worker prefills them while the parts arrive), then 12 KV segments
  // of 25 tokens sent as RAW F32 in 16 KiB parts: ~1.8 MiB, 28x the budget.
  const std::vector<int32_t>& ids = LongContext();
  const std::vector<int32_t> q = Question();
  const model::KvCache kv = LibraryKv(ids);
  std::vector<v1::ContextSegment> segs;
  {
    auto text = Segments(std::vector<int32_t>(ids.begin(), ids.begin() + 300), 300, {});
    segs.push_back(text[0]);
  }
  std::vector<v1::KvChunkPart> parts;
  for (int a = 300, i = 1; a < 600; a += 25, ++i) {
    v1::ContextSegment s;
    s.set_token_begin(a);
    s.set_token_end(a + 25);
    s.set_form(v1::FORM_KV);
    s.set_kv_dtype(v1::DTYPE_F32);
    s.mutable_tokens()->mutable_ids()->Assign(ids.begin() + a, ids.begin() + a + 25);
    segs.push_back(s);
    for (auto& p : rpc::SplitKvChunk(Ref(i, a, a + 25), v1::KV_ENCODING_RAW, -1,
                                     RawBytes(kv, a, a + 25, tensor::DType::kF32), kPart)) {
      parts.push_back(std::move(p));
    }
  }
  REQUIRE(parts.size() > 100);

  GenResult r = RunGenerate(StartOf(segs, q, kMaxNew), parts, {}, stub.get());
  INFO(r.status.error_message());
  REQUIRE(r.status.ok());
  std::vector<int32_t> all = ids;
  all.insert(all.end(), q.begin(), q.end());
  CHECK(r.ids == LibraryGreedy(all, kMaxNew));  // RAW F32: the same KV as the text path
  CHECK(r.done.kv_tokens() == 300u);

  const std::string metrics = HttpGet(service->metrics_address, "/metrics");
  const double peak = MetricValue(metrics, "ctxstream_inference_kv_inbound_buffered_peak_bytes");
  const double pauses = MetricValue(metrics, "ctxstream_inference_kv_inbound_read_pauses_total");
  const double now = MetricValue(metrics, "ctxstream_inference_kv_inbound_buffered_bytes");
  WARN("inbound KV: peak buffered " << peak << " bytes (budget " << kBudget << "), read pauses "
                                    << pauses << ", buffered after the call " << now);
  CHECK(peak > 0);
  CHECK(peak < kBudget + kPart);  // the budget plus at most the one message read last
  CHECK(pauses >= 1);             // the reader did stop while the worker prefilled
  CHECK(now == 0);
}

TEST_CASE("TTFT for a 1024-token context: text vs RAW KV vs CACHEGEN KV", "[.bench]") {
  std::ifstream in(SourcePath("models/README.md"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<int32_t> ids = Encode(ss.str(), true);
  REQUIRE(ids.size() >= 1024);
  ids.resize(1024);
  const std::vector<int32_t> q = Question();
  const model::KvCache kv = LibraryKv(ids);
  const std::vector<v1::Form> all_kv(4, v1::FORM_KV);
  auto parts_for = [&](int level) {
    std::vector<v1::KvChunkPart> parts;
    for (int a = 0, i = 0; a < 1024; a += 256, ++i) {
      AppendParts(&parts, Ref(i, a, a + 256),
                  level < 0 ? v1::KV_ENCODING_RAW : v1::KV_ENCODING_CACHEGEN, level,
                  level < 0 ? RawBytes(kv, a, a + 256, tensor::DType::kF16)
                            : CodecBytes(kv, a, a + 256, level, Codec(), &ids));
    }
    return parts;
  };
  auto report = [](const char* what, const GenResult& r) {
    uint64_t bytes = 0;
    for (const auto& b : r.done.bytes()) bytes += b.bytes();
    std::printf(
        "%-22s ttft(server) %.3f s  ttft(client) %.3f s  decode %.3f s  prefill %.3f s  "
        "bytes %llu\n",
        what, r.done.timings().ttft_seconds(), r.client_ttft, r.done.timings().decode_seconds(),
        r.done.timings().prefill_seconds(), static_cast<unsigned long long>(bytes));
  };
  GenResult warm = RunGenerate(StartOf(Segments(ids, 256, {}), q, 1));
  REQUIRE(warm.status.ok());
  GenResult text = RunGenerate(StartOf(Segments(ids, 256, {}), q, 4));
  REQUIRE(text.status.ok());
  report("text", text);
  GenResult raw = RunGenerate(StartOf(Segments(ids, 256, all_kv), q, 4), parts_for(-1));
  REQUIRE(raw.status.ok());
  report("RAW F16 KV", raw);
  for (int level : {0, 3}) {
    GenResult cg = RunGenerate(StartOf(Segments(ids, 256, all_kv), q, 4), parts_for(level));
    REQUIRE(cg.status.ok());
    report(level == 0 ? "CACHEGEN L0 KV" : "CACHEGEN L3 (r0) KV", cg);
  }
}

}  // namespace
}  // namespace ctx::testing
