// QueryEngine against in-process fakes of inference, kvcache and compressor: the plan follows
// common/policy, fallbacks, retries, deadlines and the bandwidth estimate.
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/rpc/channel.h"
#include "services/controller/context_registry.h"
#include "services/controller/query_engine.h"
#include "tests/controller/fakes.h"

namespace ctx::testing {
namespace {

namespace pb = ctxstream::v1;
using controller::ContextRegistry;
using controller::EngineOptions;
using controller::InferenceSet;
using controller::KvCacheSet;
using controller::QueryEngine;

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return *rpc::MakeChannel(address);
}

// Fakes + engine. `inference_replicas` fake inference servers; the kvcache endpoint can be
// replaced by a dead address.
struct Harness {
  explicit Harness(int inference_replicas = 1, bool with_compressor = true,
                   const std::string& kv_address_override = "", EngineOptions opt = {}) {
    for (int i = 0; i < inference_replicas; ++i) {
      inference.push_back(std::make_unique<FakeInference>());
      inference_servers.push_back(std::make_unique<FakeServer>(inference.back().get()));
    }
    kv_server = std::make_unique<FakeServer>(&kv);
    comp_server = std::make_unique<FakeServer>(&comp);
    std::vector<InferenceSet::Replica> inf;
    for (auto& s : inference_servers) {
      inf.push_back({s->address(), pb::Inference::NewStub(Channel(s->address()))});
    }
    inference_set = std::make_unique<InferenceSet>(std::move(inf));
    const std::string kv_addr =
        kv_address_override.empty() ? kv_server->address() : kv_address_override;
    std::vector<KvCacheSet::Replica> kvr;
    kvr.push_back({kv_addr, pb::KvCache::NewStub(Channel(kv_addr))});
    kv_set = std::make_unique<KvCacheSet>(std::move(kvr));
    if (with_compressor) comp_stub = pb::Compressor::NewStub(Channel(comp_server->address()));
    registry = *ContextRegistry::Open("");
    opt.metadata_timeout_s = 5;
    engine = std::make_unique<QueryEngine>(
        controller::Backends{inference_set.get(), kv_set.get(), comp_stub.get()}, registry.get(),
        opt);
  }

  QueryEngine::Clock::time_point Deadline(double s = 20) const {
    return QueryEngine::Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
  }

  // Registers `words` words (+ BOS) as `tenant`; returns the id and the events.
  std::string Register(int words, const std::string& tenant = "t1",
                       std::vector<pb::RegisterProgress>* events = nullptr) {
    pb::RegisterContextRequest req;
    req.set_text(Words(words));
    std::vector<pb::RegisterProgress> ev;
    grpc::Status s = engine->Register(tenant, req, Deadline(), [&](const pb::RegisterProgress& p) {
      ev.push_back(p);
      return true;
    });
    REQUIRE(s.ok());
    REQUIRE(!ev.empty());
    if (events != nullptr) *events = ev;
    return ev.back().context_id();
  }

  struct Outcome {
    grpc::Status status;
    std::vector<pb::QueryEvent> events;
    const pb::Plan& plan() const { return events.front().plan(); }
    const pb::QueryResult& result() const { return events.back().result(); }
  };
  Outcome Query(const pb::QueryRequest& req, const std::string& tenant = "t1",
                QueryEngine::Clock::time_point deadline = {}) {
    if (deadline == QueryEngine::Clock::time_point{}) deadline = Deadline();
    Outcome o;
    o.status = engine->Query(tenant, req, deadline, [&](const pb::QueryEvent& e) {
      o.events.push_back(e);
      return true;
    });
    return o;
  }

  std::vector<std::unique_ptr<FakeInference>> inference;
  std::vector<std::unique_ptr<FakeServer>> inference_servers;
  FakeKvCache kv;
  FakeCompressor comp;
  std::unique_ptr<FakeServer> kv_server, comp_server;
  std::unique_ptr<InferenceSet> inference_set;
  std::unique_ptr<KvCacheSet> kv_set;
  std::unique_ptr<pb::Compressor::StubInterface> comp_stub;
  std::unique_ptr<ContextRegistry> registry;
  std::unique_ptr<QueryEngine> engine;
};

pb::QueryRequest Ask(const std::string& id, double slo = 1.0) {
  pb::QueryRequest q;
  q.set_context_id(id);
  q.set_question("what is it ?");
  q.set_max_tokens(3);
  q.set_slo_ttft_seconds(slo);
  q.set_force_level(-1);
  return q;
}

const pb::OptionEstimate* FindOption(const pb::Plan& p, pb::Form form, int level) {
  for (const pb::OptionEstimate& o : p.options()) {
    if (o.form() == form && o.level() == level) return &o;
  }
  return nullptr;
}

// Common structure of every successful query: plan first, result last, tokens between.
void CheckShape(const Harness::Outcome& o) {
  INFO(o.status.error_message());
  REQUIRE(o.status.ok());
  REQUIRE(o.events.size() >= 2);
  REQUIRE(o.events.front().has_plan());
  REQUIRE(o.events.back().has_result());
  int tokens = 0;
  for (size_t i = 1; i + 1 < o.events.size(); ++i) {
    CHECK(!o.events[i].has_plan());
    CHECK(!o.events[i].has_result());
    tokens += o.events[i].has_token();
  }
  CHECK(static_cast<uint32_t>(tokens) == o.result().generated_tokens());
  CHECK(o.result().answer() == " t0 t1 t2");
}

TEST_CASE("register tokenizes, ingests and streams progress, the record knows the KV") {
  Harness h;
  std::vector<pb::RegisterProgress> ev;
  const std::string id = h.Register(2047, "t1", &ev);  // 2048 tokens with BOS
  CHECK(id.size() == 32);
  CHECK(ev.front().message() == "tokenized");
  CHECK(ev.front().tokens() == 2048);
  CHECK(ev.front().chunks_total() == 8);
  CHECK(ev.back().ready());
  CHECK(ev.back().chunks_done() == 8);
  CHECK(ev.size() >= 3);  // tokenized, ingesting..., ready
  pb::ContextInfo info;
  pb::GetContextRequest g;
  g.set_context_id(id);
  REQUIRE(h.engine->GetContext("t1", g, &info).ok());
  CHECK(info.tokens() == 2048);
  CHECK(info.chunks() == 8);
  CHECK(info.kv_ready());
  CHECK(info.kv_bytes() == static_cast<uint64_t>((500 + 300 + 220 + 150) * 2048));
  std::lock_guard<std::mutex> lock(h.kv.mu);
  CHECK(h.kv.manifests.count("t1/" + id) == 1);  // ingested under the tenant
}

TEST_CASE("the plan follows the policy: text at tiny bandwidth, KV level 0 at high") {
  Harness h;
  const std::string id = h.Register(2047);

  SECTION("tiny bandwidth: only text (and compressed text) meet a 3 s SLO, text is lossless") {
    h.engine->SeedBandwidth(0, 0, 1e3);
    Harness::Outcome o = h.Query(Ask(id, 3.0));
    CheckShape(o);
    CHECK(o.plan().form() == pb::FORM_TEXT);
    CHECK(o.plan().bandwidth_estimate_bytes_per_second() == Approx(1e3));
    // Text's prediction: P(0, 2048) + P(2048, 2048 + q) from the fitted reference speeds.
    const pb::OptionEstimate* text = FindOption(o.plan(), pb::FORM_TEXT, -1);
    REQUIRE(text != nullptr);
    CHECK(text->predicted_ttft_seconds() == Approx(2.357 + 4 * 2048 / 125e6).epsilon(0.02));
    CHECK(o.plan().predicted_ttft_seconds() == Approx(text->predicted_ttft_seconds()));
    // Every option was listed: text, compressed text, 4 KV levels.
    CHECK(o.plan().options_size() == 6);
    REQUIRE(h.inference[0]->starts.size() == 1);
    const pb::GenerateStart& s = h.inference[0]->starts[0];
    REQUIRE(s.segments_size() == 1);
    CHECK(s.segments(0).form() == pb::FORM_TEXT);
    CHECK(s.segments(0).tokens().ids_size() == 2048);
    CHECK(s.question().ids_size() == 4);  // "what is it ?", no BOS
    CHECK(!s.has_kv_source());
    CHECK(o.result().bytes_size() == 1);
    CHECK(o.result().bytes(0).bytes() == 4 * 2048);
    CHECK(!o.result().fell_back());
  }
  SECTION("high bandwidth: KV at the best level, pulled by inference from kvcache") {
    h.engine->SeedBandwidth(0, 0, 1e9);
    Harness::Outcome o = h.Query(Ask(id, 1.0));
    CheckShape(o);
    CHECK(o.plan().form() == pb::FORM_KV);
    REQUIRE(o.plan().chunks_size() == 8);
    for (const pb::ChunkPlan& c : o.plan().chunks()) CHECK(c.level() == 0);
    CHECK(o.plan().predicted_quality_loss() == Approx(0.001));
    REQUIRE(h.inference[0]->starts.size() == 1);
    const pb::GenerateStart& s = h.inference[0]->starts[0];
    REQUIRE(s.has_kv_source());
    CHECK(s.kv_source().kvcache_address() == h.kv_server->address());
    CHECK(s.kv_source().context_id() == id);
    CHECK(s.kv_source().tenant() == "t1");
    CHECK(s.kv_source().plan_size() == 8);
    CHECK(s.kv_source().adapt());
    CHECK(s.kv_source().adaptation().level_quality_loss_size() == 4);
    CHECK(s.kv_source().adaptation().slo_ttft_seconds() <= 1.0);
    CHECK(s.kv_source().adaptation().bandwidth_estimate_bytes_per_second() == Approx(1e9));
    REQUIRE(s.segments_size() == 8);
    CHECK(s.segments(7).token_begin() == 7 * 256);
    CHECK(s.segments(7).token_end() == 2048);
    CHECK(s.segments(7).tokens().ids_size() == 256);
    // The receiver's per-chunk decisions are forwarded between the plan and the tokens.
    int decisions = 0;
    for (const pb::QueryEvent& e : o.events) decisions += e.has_decision();
    CHECK(decisions == 8);
    CHECK(o.events[1].has_decision());
  }
  SECTION("medium bandwidth: the best level that meets the SLO") {
    // 2048 tokens: L0 1.02 MB, L1 614 kB, L2 451 kB, L3 307 kB; at 0.5 MB/s only L2/L3 fit 1 s.
    h.engine->SeedBandwidth(0, 0, 0.5e6);
    Harness::Outcome o = h.Query(Ask(id, 1.0));
    CheckShape(o);
    CHECK(o.plan().form() == pb::FORM_KV);
    REQUIRE(o.plan().chunks_size() == 8);
    CHECK(o.plan().chunks(0).level() == 2);
    CHECK(o.plan().predicted_ttft_seconds() <= 1.0);

    SECTION("a quality floor excludes levels that lose more") {
      h.engine->SeedBandwidth(0, 0, 0.5e6);  // the query above measured the fake's 2 MB/s
      pb::QueryRequest q = Ask(id, 1.0);
      q.set_max_quality_loss(0.02);
      Harness::Outcome f = h.Query(q);
      CheckShape(f);
      CHECK(f.plan().form() == pb::FORM_KV);
      CHECK(f.plan().chunks(0).level() == 1);  // the fastest allowed (L1 1.2 s < text 2.4 s)
      CHECK(f.plan().predicted_quality_loss() <= 0.02);
    }
  }
}

TEST_CASE("forced forms are honoured") {
  Harness h;
  const std::string id = h.Register(2047);
  h.engine->SeedBandwidth(0, 0, 1e9);

  SECTION("text") {
    pb::QueryRequest q = Ask(id);
    q.set_force_form(pb::FORM_TEXT);
    Harness::Outcome o = h.Query(q);
    CheckShape(o);
    CHECK(o.plan().form() == pb::FORM_TEXT);
    CHECK(o.plan().reason().find("forced") != std::string::npos);
  }
  SECTION("KV at level 3, not re-planned") {
    pb::QueryRequest q = Ask(id);
    q.set_force_form(pb::FORM_KV);
    q.set_force_level(3);
    Harness::Outcome o = h.Query(q);
    CheckShape(o);
    CHECK(o.plan().form() == pb::FORM_KV);
    CHECK(o.plan().chunks(0).level() == 3);
    REQUIRE(h.inference[0]->starts.size() == 1);
    CHECK(!h.inference[0]->starts[0].kv_source().adapt());
  }
  SECTION("compressed text: the compressor runs on the query path") {
    pb::QueryRequest q = Ask(id);
    q.set_force_form(pb::FORM_COMPRESSED_TEXT);
    Harness::Outcome o = h.Query(q);
    CheckShape(o);
    CHECK(o.plan().form() == pb::FORM_COMPRESSED_TEXT);
    CHECK(o.plan().compress_rate() == Approx(0.5));
    CHECK(h.comp.calls == 1);
    const pb::GenerateStart& s = h.inference[0]->starts[0];
    REQUIRE(s.segments_size() == 1);
    CHECK(s.segments(0).form() == pb::FORM_COMPRESSED_TEXT);
    CHECK(s.segments(0).tokens().ids_size() == 1 + 1024);  // BOS + every other word
    CHECK(o.result().timings().compress_seconds() > 0);
  }
  SECTION("a level that is not stored is INVALID_ARGUMENT") {
    pb::QueryRequest q = Ask(id);
    q.set_force_form(pb::FORM_KV);
    q.set_force_level(9);
    Harness::Outcome o = h.Query(q);
    CHECK(o.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(o.events.empty());
  }
}

TEST_CASE("inline text is served as text or compressed text, never KV") {
  Harness h;
  h.engine->SeedBandwidth(0, 0, 1e9);
  pb::QueryRequest q;
  q.set_context_text(Words(99));
  q.set_question("why ?");
  q.set_force_level(-1);
  Harness::Outcome o = h.Query(q);
  CheckShape(o);
  CHECK(o.plan().form() == pb::FORM_TEXT);  // no SLO: best quality
  CHECK(FindOption(o.plan(), pb::FORM_KV, 0) == nullptr);
  CHECK(h.inference[0]->starts[0].segments(0).tokens().ids_size() == 100);
  CHECK(!o.result().fell_back());
}

TEST_CASE("kvcache unreachable before the query: text, and the response says so") {
  SECTION("kvcache answers UNAVAILABLE") {
    Harness h;
    const std::string id = h.Register(2047);
    h.engine->SeedBandwidth(0, 0, 1e9);
    h.kv.unavailable = true;
    Harness::Outcome o = h.Query(Ask(id));
    CheckShape(o);
    // With KV up this would be KV level 0 (see above); without it, the fastest text form.
    CHECK(o.plan().form() == pb::FORM_COMPRESSED_TEXT);
    CHECK(FindOption(o.plan(), pb::FORM_KV, 0) == nullptr);
    CHECK(o.plan().reason().find("kvcache unreachable") != std::string::npos);
    CHECK(o.result().fell_back());
    CHECK(o.result().fallback_reason().find("kvcache unreachable") != std::string::npos);
  }
  SECTION("kvcache address refuses connections, forced KV degrades to text") {
    Harness up;
    const std::string id = up.Register(2047);
    // A second engine over the same registry whose kvcache is a closed port.
    Harness down(1, true, "127.0.0.1:1");
    REQUIRE(down.registry->Put(*up.registry->Get("t1", id)).ok());
    pb::QueryRequest q = Ask(id);
    q.set_force_form(pb::FORM_KV);
    Harness::Outcome o = down.Query(q);
    CheckShape(o);
    CHECK(o.plan().form() == pb::FORM_TEXT);
    CHECK(o.plan().reason().find("forced KV unavailable") != std::string::npos);
    CHECK(o.result().fell_back());
  }
  SECTION("the context's KV is missing in kvcache") {
    Harness h;
    const std::string id = h.Register(2047);
    h.engine->SeedBandwidth(0, 0, 1e9);
    {
      std::lock_guard<std::mutex> lock(h.kv.mu);
      h.kv.manifests.clear();
    }
    Harness::Outcome o = h.Query(Ask(id));
    CheckShape(o);
    CHECK(o.plan().form() == pb::FORM_COMPRESSED_TEXT);
    CHECK(o.result().fell_back());
    CHECK(o.result().fallback_reason().find("missing") != std::string::npos);
  }
  SECTION("the inference node reports a mid-stream fallback") {
    Harness h;
    const std::string id = h.Register(2047);
    h.engine->SeedBandwidth(0, 0, 1e9);
    h.inference[0]->report_fell_back = true;
    Harness::Outcome o = h.Query(Ask(id));
    CheckShape(o);
    CHECK(o.plan().form() == pb::FORM_KV);
    CHECK(o.result().fell_back());
    CHECK(o.result().fallback_reason() == "fake: chunk 1 corrupt, prefilled");
  }
}

TEST_CASE("register without kvcache still registers a text-servable context") {
  Harness h(1, true, "127.0.0.1:1");
  std::vector<pb::RegisterProgress> ev;
  const std::string id = h.Register(10, "t1", &ev);
  CHECK(!ev.back().ready());
  CHECK(ev.back().message().find("queried as text") != std::string::npos);
  Harness::Outcome o = h.Query(Ask(id, 0));
  CheckShape(o);
  CHECK(o.plan().form() == pb::FORM_TEXT);
  CHECK(o.result().fell_back());
  CHECK(o.result().fallback_reason() == "the context's KV was never ingested");
}

TEST_CASE("an UNAVAILABLE inference replica is retried once on another") {
  SECTION("two replicas: the second serves") {
    Harness h(2);
    const std::string id = h.Register(100);
    h.inference[0]->generate_unavailable = true;
    h.inference[1]->generate_unavailable = false;
    // Whichever replica the first pick lands on, make both picks happen: fail the first.
    Harness::Outcome o = h.Query(Ask(id, 0));
    if (!o.status.ok() || h.inference[0]->generate_calls == 0) {
      // The first pick was replica 1 (healthy): run again so replica 0 is picked first.
      o = h.Query(Ask(id, 0));
    }
    CheckShape(o);
    CHECK(h.inference[0]->generate_calls >= 1);
    CHECK(o.result().inference_endpoint() == h.inference_servers[1]->address());
  }
  SECTION("retry disabled: a clear UNAVAILABLE error naming the replica") {
    EngineOptions opt;
    opt.retry_inference = false;
    Harness h(2, true, "", opt);
    const std::string id = h.Register(100);
    h.inference[0]->generate_unavailable = true;
    h.inference[1]->generate_unavailable = true;
    Harness::Outcome o = h.Query(Ask(id, 0));
    CHECK(o.status.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(o.status.error_message().find("Generate: fake replica is down") != std::string::npos);
    CHECK(h.inference[0]->generate_calls + h.inference[1]->generate_calls == 1);
  }
  SECTION("one replica: the error says there is no other") {
    Harness h(1);
    const std::string id = h.Register(100);
    h.inference[0]->generate_unavailable = true;
    Harness::Outcome o = h.Query(Ask(id, 0));
    CHECK(o.status.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(o.status.error_message().find("no other inference replica") != std::string::npos);
  }
}

TEST_CASE("contexts longer than the model's context are refused with the numbers") {
  Harness h;
  h.inference[0]->max_context_tokens = 40;
  pb::RegisterContextRequest req;
  req.set_text(Words(40));  // 41 tokens with BOS
  grpc::Status s =
      h.engine->Register("t1", req, h.Deadline(), [](const pb::RegisterProgress&) { return true; });
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message().find("41 tokens") != std::string::npos);
  CHECK(h.registry->size() == 0);

  const std::string id = h.Register(29);  // 30 tokens fit
  pb::QueryRequest q = Ask(id, 0);        // 4 question tokens
  q.set_max_tokens(7);                    // 30 + 4 + 7 = 41 > 40
  Harness::Outcome o = h.Query(q);
  CHECK(o.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(o.status.error_message().find("exceed the model's 40") != std::string::npos);
  CHECK(o.events.empty());
  q.set_max_tokens(6);
  CheckShape(h.Query(q));
}

TEST_CASE("kvcache replicas with their own stores: the one holding the context serves it") {
  FakeInference inf;
  FakeKvCache kv0, kv1;
  FakeServer inf_server(&inf), kv0_server(&kv0), kv1_server(&kv1);
  std::vector<InferenceSet::Replica> ir;
  ir.push_back({inf_server.address(), pb::Inference::NewStub(Channel(inf_server.address()))});
  InferenceSet inference(std::move(ir));
  std::vector<KvCacheSet::Replica> kr;
  kr.push_back({kv0_server.address(), pb::KvCache::NewStub(Channel(kv0_server.address()))});
  kr.push_back({kv1_server.address(), pb::KvCache::NewStub(Channel(kv1_server.address()))});
  KvCacheSet kvcache(std::move(kr));
  auto registry = *ContextRegistry::Open("");
  QueryEngine engine({&inference, &kvcache, nullptr}, registry.get(), EngineOptions{});
  const auto deadline = QueryEngine::Clock::now() + std::chrono::seconds(20);

  pb::RegisterContextRequest reg;
  reg.set_text(Words(2047));
  std::string id;
  REQUIRE(engine
              .Register("t1", reg, deadline,
                        [&](const pb::RegisterProgress& p) {
                          id = p.context_id();
                          return true;
                        })
              .ok());
  REQUIRE(kv0.manifests.size() + kv1.manifests.size() == 1);
  const std::string holder = kv0.manifests.empty() ? kv1_server.address() : kv0_server.address();
  engine.SeedBandwidth(0, 0, 1e9);
  engine.SeedBandwidth(1, 0, 1e9);
  for (int i = 0; i < 2; ++i) {  // the first pick alternates between the replicas
    std::vector<pb::QueryEvent> events;
    REQUIRE(engine
                .Query("t1", Ask(id), deadline,
                       [&](const pb::QueryEvent& e) {
                         events.push_back(e);
                         return true;
                       })
                .ok());
    CHECK(events.front().plan().form() == pb::FORM_KV);
    CHECK(!events.back().result().fell_back());
    CHECK(inf.starts.back().kv_source().kvcache_address() == holder);
  }
  pb::ControllerDeleteContextRequest d;
  d.set_context_id(id);
  pb::ControllerDeleteContextResponse dr;
  REQUIRE(engine.DeleteContext("t1", d, deadline, &dr).ok());
  CHECK(kv0.deleted.size() == 1);  // asked everywhere
  CHECK(kv1.deleted.size() == 1);
  CHECK(kv0.manifests.empty());
  CHECK(kv1.manifests.empty());
}

TEST_CASE("least-loaded replica choice") {
  std::vector<InferenceSet::Replica> r(3);
  r[0].endpoint = "a";
  r[1].endpoint = "b";
  r[2].endpoint = "c";
  InferenceSet set(std::move(r));
  InferenceSet::Lease a = set.Acquire();
  InferenceSet::Lease b = set.Acquire();
  CHECK(a.index() != b.index());
  InferenceSet::Lease c = set.Acquire();
  CHECK((std::set<size_t>{a.index(), b.index(), c.index()}).size() == 3);
  const size_t freed = b.index();
  b = InferenceSet::Lease();
  CHECK(set.Acquire().index() == freed);  // the only idle one
  CHECK(!set.Acquire({0, 1, 2}));
}

TEST_CASE("least-loaded choice counts the load a replica reports (ModelInfo.active_requests)") {
  std::vector<InferenceSet::Replica> r(2);
  InferenceSet set(std::move(r));
  set.ReportLoad(0, 4);  // busy with other controllers' requests
  for (int i = 0; i < 3; ++i) CHECK(set.Acquire().index() == 1);  // leases released at once
  CHECK(set.load(0) == 4);
  {
    InferenceSet::Lease a = set.Acquire(), b = set.Acquire(), c = set.Acquire(), d = set.Acquire();
    CHECK(a.index() == 1);
    CHECK(set.load(1) >= 4);  // four of ours on 1 by now: ties rotate
  }
  set.set_report_ttl(std::chrono::milliseconds(0));  // a stale report is ignored
  std::set<size_t> picked;
  for (int i = 0; i < 2; ++i) picked.insert(set.Acquire().index());
  CHECK(picked.size() == 2);
}

TEST_CASE("the engine steers queries away from a replica that reports itself busy") {
  Harness h(2);
  h.inference_set->set_report_ttl(std::chrono::seconds(60));  // robust to a slow machine
  h.inference[0]->active_requests = 5;
  h.inference[1]->active_requests = 0;
  const std::string id = h.Register(100);  // the first pick: replica 0, which reports 5
  // Sequential queries (no local in-flight): once both replicas' info has been read, every
  // query lands on replica 1.
  for (int i = 0; i < 2; ++i) CheckShape(h.Query(Ask(id, 0)));
  const int before = h.inference[1]->generate_calls;
  for (int i = 0; i < 4; ++i) {
    Harness::Outcome o = h.Query(Ask(id, 0));
    CheckShape(o);
    CHECK(o.result().inference_endpoint() == h.inference_servers[1]->address());
  }
  CHECK(h.inference[1]->generate_calls == before + 4);
}

TEST_CASE("every outbound call's deadline is no later than the query's") {
  Harness h;
  const std::string id = h.Register(2047);
  h.engine->SeedBandwidth(0, 0, 1e9);
  {
    std::lock_guard<std::mutex> l1(h.inference[0]->mu), l2(h.kv.mu);
    h.inference[0]->deadlines.clear();
    h.kv.deadlines.clear();
  }
  const auto deadline = h.Deadline(7);
  Harness::Outcome o = h.Query(Ask(id), "t1", deadline);
  CheckShape(o);
  // gRPC sends the remaining time rounded up to its timeout unit; allow that rounding.
  const auto slack = std::chrono::milliseconds(20);
  std::lock_guard<std::mutex> l1(h.inference[0]->mu), l2(h.kv.mu);
  REQUIRE(h.inference[0]->deadlines.size() >= 2);  // tokenize (question) + generate
  for (const TimePoint& d : h.inference[0]->deadlines) CHECK(d <= deadline + slack);
  REQUIRE(!h.kv.deadlines.empty());  // manifest
  for (const TimePoint& d : h.kv.deadlines) CHECK(d <= deadline + slack);
  const double fetch_s = h.inference[0]->starts.back().kv_source().fetch_deadline_seconds();
  CHECK(fetch_s > 0);
  CHECK(fetch_s <= 7.0);
}

TEST_CASE("GenerateDone's fetch throughput updates the link's bandwidth estimate") {
  Harness h;
  const std::string id = h.Register(2047);
  h.engine->SeedBandwidth(0, 0, 1e9);
  h.inference[0]->kv_bytes_reported = 1000000;
  h.inference[0]->fetch_seconds = 0.5;
  Harness::Outcome o = h.Query(Ask(id));
  CheckShape(o);
  REQUIRE(o.plan().form() == pb::FORM_KV);
  // 1 MB in 0.5 s; the seeded value is a cold start, so the first measurement replaces it.
  CHECK(h.engine->BandwidthEstimate(0, 0) == Approx(2e6));
  // The next query plans with the new estimate.
  Harness::Outcome o2 = h.Query(Ask(id));
  CheckShape(o2);
  CHECK(o2.plan().bandwidth_estimate_bytes_per_second() == Approx(2e6));
  h.inference[0]->fetch_seconds = 0.25;  // 4 MB/s
  Harness::Outcome o3 = h.Query(Ask(id));
  CheckShape(o3);
  REQUIRE(o3.plan().form() == pb::FORM_KV);
  CHECK(h.engine->BandwidthEstimate(0, 0) == Approx(0.5 * 4e6 + 0.5 * 2e6));  // EWMA, alpha 0.5
}

TEST_CASE("per-chunk wire throughputs, when reported, set the link estimate") {
  Harness h;
  const std::string id = h.Register(2047);
  h.engine->SeedBandwidth(0, 0, 1e9);
  h.inference[0]->kv_bytes_reported = 1000000;
  h.inference[0]->fetch_seconds = 0.5;  // 2 MB/s waited: overlaps decode, not the link's rate
  h.inference[0]->chunk_wire_bps = 3e6;
  Harness::Outcome o = h.Query(Ask(id));
  CheckShape(o);
  REQUIRE(o.plan().form() == pb::FORM_KV);
  REQUIRE(o.plan().chunks_size() >= 2);
  // Every measured chunk moved at 3 MB/s: sum(bytes) / sum(bytes / 3e6) = 3e6.
  CHECK(h.engine->BandwidthEstimate(0, 0) == Approx(3e6));
}

TEST_CASE("measured prefill times refine the prefill model") {
  Harness h;
  const std::string id = h.Register(2047);
  h.engine->SeedBandwidth(0, 0, 1e3);  // KV hopeless: text-like forms only
  pb::QueryRequest q = Ask(id, 0);
  q.set_force_form(pb::FORM_TEXT);
  Harness::Outcome first = h.Query(q);
  CheckShape(first);
  const double before = first.plan().predicted_ttft_seconds();
  CHECK(before == Approx(2.357).epsilon(0.01));
  // The node turns out 3x slower than it advertised: predictions follow the measurements.
  h.inference[0]->prefill_scale = 3.0;
  for (int i = 0; i < 6; ++i) CheckShape(h.Query(q));
  Harness::Outcome later = h.Query(q);
  CheckShape(later);
  CHECK(later.plan().predicted_ttft_seconds() > 2.0 * before);
}

TEST_CASE("contexts are tenant-scoped in the engine") {
  Harness h;
  const std::string id = h.Register(100, "alice");
  pb::GetContextRequest g;
  g.set_context_id(id);
  pb::ContextInfo info;
  CHECK(h.engine->GetContext("bob", g, &info).error_code() == grpc::StatusCode::NOT_FOUND);
  pb::ListContextsResponse list;
  REQUIRE(h.engine->ListContexts("bob", {}, &list).ok());
  CHECK(list.contexts_size() == 0);
  Harness::Outcome o = h.Query(Ask(id), "bob");
  CHECK(o.status.error_code() == grpc::StatusCode::NOT_FOUND);
  pb::ControllerDeleteContextRequest d;
  d.set_context_id(id);
  pb::ControllerDeleteContextResponse dr;
  CHECK(h.engine->DeleteContext("bob", d, h.Deadline(), &dr).error_code() ==
        grpc::StatusCode::NOT_FOUND);
  CHECK(h.kv.deleted.empty());
  REQUIRE(h.engine->DeleteContext("alice", d, h.Deadline(), &dr).ok());
  CHECK(dr.deleted());
  REQUIRE(h.kv.deleted.size() == 1);
  CHECK(h.kv.deleted[0] == "alice/" + id);
  CHECK(h.engine->GetContext("alice", g, &info).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("ListContexts pages in id order") {
  Harness h;
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.insert(h.Register(3, "t1"));
  h.Register(3, "t2");
  pb::ListContextsRequest req;
  req.set_page_size(2);
  std::vector<std::string> seen;
  for (int page = 0; page < 10; ++page) {
    pb::ListContextsResponse resp;
    REQUIRE(h.engine->ListContexts("t1", req, &resp).ok());
    CHECK(resp.contexts_size() <= 2);
    for (const pb::ContextInfo& c : resp.contexts()) seen.push_back(c.context_id());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  CHECK(seen == std::vector<std::string>(ids.begin(), ids.end()));
}

}  // namespace
}  // namespace ctx::testing
