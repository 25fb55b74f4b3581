// Faults: kill -9 of kvcache during an Ingest (disk store), Redis restarts, a guessed chunk
// hash of another tenant, client cancellation (Query / Generate / Fetch / Ingest) freeing the
// servers' streams, and an inference replica killed in the middle of a query.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "common/rpc/kv_parts.h"
#include "tests/harden/harden_support.h"

namespace ctx::harden {
namespace {

using namespace std::chrono_literals;
using ctx::testing::StartService;
namespace fs = std::filesystem;

std::string Hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

fs::path TempDir(const std::string& what) {
  const fs::path dir =
      fs::temp_directory_path() / ("ctx_harden_" + what + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

grpc::Status GetManifest(pb::KvCache::Stub& stub, const std::string& tenant, const std::string& id,
                         pb::Manifest* m) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + 10s);
  pb::GetManifestRequest r;
  r.set_tenant(tenant);
  r.set_context_id(id);
  return stub.GetManifest(&c, r, m);
}

// Fetches every encoding of every chunk of `m` and decodes each with the profile's codec.
void CheckWholeContext(pb::KvCache::Stub& stub, const pb::Manifest& m) {
  const std::vector<FetchItem> items = AllItems(m);
  auto [s, blobs] = Fetch(stub, m.tenant(), m.context_id(), items);
  INFO(s.error_message());
  REQUIRE(s.ok());
  REQUIRE(blobs.size() == items.size());
  for (size_t i = 0; i < blobs.size(); ++i) {
    INFO("chunk " << items[i].chunk << " encoding " << items[i].encoding << " level "
                  << items[i].level);
    auto d = ProfileCodec().Decode(blobs[i]);
    REQUIRE(d.ok());
  }
}

}  // namespace

TEST_CASE(
    "kill -9 of kvcache during an Ingest: committed contexts intact after restart, no "
    "half-written chunk served",
    "[harden][faults]") {
  const std::string inference = SharedInference().grpc_address;
  const fs::path dir = TempDir("disk");
  const std::vector<std::string> args = {"--store=disk", "--store_dir=" + dir.string()};
  pb::Manifest committed;
  {
    RunningService kv = StartKvCache(inference, args);
    auto stub = KvCacheStub(kv.grpc_address);
    IngestResult a = Ingest(*stub, IngestRequestFor("t", "a", DocTokens(512), {0, 3}, true));
    REQUIRE(a.status.ok());
    committed = a.events.back().manifest();

    // B: 6 chunks at every level + baselines; killed as soon as its first chunk is stored.
    grpc::ClientContext ctx;
    auto reader = stub->Ingest(&ctx, IngestRequestFor("t", "b", DocTokens(1536, 256), {}, true));
    pb::IngestProgress p;
    bool mid = false;
    while (reader->Read(&p)) {
      if (p.chunks_done() >= 1 && !p.committed()) {
        mid = true;
        break;
      }
    }
    REQUIRE(mid);
    kv.process->Signal(SIGKILL);
    REQUIRE(kv.process->WaitExit(10s).has_value());
    ctx.TryCancel();
    reader->Finish();
  }

  RunningService kv = StartKvCache(inference, args);
  auto stub = KvCacheStub(kv.grpc_address);
  pb::Manifest m;
  REQUIRE(GetManifest(*stub, "t", "a", &m).ok());
  CHECK(m.SerializeAsString() == committed.SerializeAsString());
  CheckWholeContext(*stub, m);
  // B never committed: invisible, not half-visible.
  CHECK(GetManifest(*stub, "t", "b", &m).error_code() == grpc::StatusCode::NOT_FOUND);

  // Ingesting B again reuses only chunks whose every blob reads back whole, and serves all.
  IngestResult b = Ingest(*stub, IngestRequestFor("t", "b", DocTokens(1536, 256), {}, true));
  REQUIRE(b.status.ok());
  CHECK(b.events.back().chunks_reused() < 6);
  CheckWholeContext(*stub, b.events.back().manifest());

  // A torn blob on disk (truncated behind kvcache's back) is DATA_LOSS, never bytes.
  const auto& c0 = committed.chunks(0);
  const std::string name =
      Hex(c0.ref().chunk_hash()) + ".e" + std::to_string(pb::KV_ENCODING_CACHEGEN) + ".l0";
  fs::path blob;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename().string().find(name) == 0) blob = e.path();
  }
  REQUIRE_FALSE(blob.empty());
  fs::resize_file(blob, fs::file_size(blob) / 2);
  auto [s, got] = Fetch(*stub, "t", "a", {{0, pb::KV_ENCODING_CACHEGEN, 0}});
  CHECK(s.error_code() == grpc::StatusCode::DATA_LOSS);
  CHECK(got.empty());
  fs::remove_all(dir);
}

TEST_CASE(
    "Redis restart: kvcache reports UNAVAILABLE while it is down, then reconnects and "
    "serves",
    "[harden][faults]") {
  if (FindRedis().empty()) {
    WARN("redis-server not installed: skipped");
    return;
  }
  const fs::path dir = TempDir("redis");
  const int port = FreePort();
  auto redis = StartRedis(port, dir.string());
  RunningService kv = StartKvCache(SharedInference().grpc_address,
                                   {"--store=redis", "--redis=127.0.0.1:" + std::to_string(port)});
  auto stub = KvCacheStub(kv.grpc_address);
  IngestResult a = Ingest(*stub, IngestRequestFor("t", "a", DocTokens(512), {0, 5}, false));
  REQUIRE(a.status.ok());

  redis->Signal(SIGTERM);
  REQUIRE(redis->WaitExit(10s).has_value());
  pb::Manifest m;
  const grpc::Status down = GetManifest(*stub, "t", "a", &m);
  CHECK(down.error_code() == grpc::StatusCode::UNAVAILABLE);
  INFO("while Redis is down: " << down.error_message());

  redis = StartRedis(port, dir.string());  // same port, same append-only file
  REQUIRE(WaitFor([&] { return GetManifest(*stub, "t", "a", &m).ok(); }, 15s));
  CheckWholeContext(*stub, m);
  // And it takes writes again.
  CHECK(Ingest(*stub, IngestRequestFor("t", "b", DocTokens(256, 700), {0}, false)).status.ok());
  redis->Signal(SIGTERM);
  redis->WaitExit(10s);
  fs::remove_all(dir);
}

TEST_CASE(
    "a guessed chunk hash or context id of another tenant, straight to kvcache, is "
    "refused",
    "[harden][faults]") {
  RunningService kv = StartKvCache(SharedInference().grpc_address, {"--store=memory"});
  auto stub = KvCacheStub(kv.grpc_address);
  const std::vector<int32_t> tokens = DocTokens(300);
  IngestResult a = Ingest(*stub, IngestRequestFor("alice", "secret", tokens, {0}, false));
  REQUIRE(a.status.ok());
  const pb::Manifest ma = a.events.back().manifest();
  const std::string hash_hex = Hex(ma.chunks(0).ref().chunk_hash());

  // Fetch names (tenant, context, chunk index); the blob key always comes from the caller's
  // own manifest, so neither alice's context id nor her chunk hash reach her bytes.
  for (const std::string& guess : {std::string("secret"), hash_hex}) {
    INFO("guess " << guess);
    auto [s, blobs] = Fetch(*stub, "bob", guess, {{0, pb::KV_ENCODING_CACHEGEN, 0}});
    CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(blobs.empty());
  }
  // The same tokens ingested by bob hash differently (hashes are tenant-scoped), and bob's
  // copy never shares alice's blobs (nothing reused).
  IngestResult b = Ingest(*stub, IngestRequestFor("bob", "mine", tokens, {0}, false));
  REQUIRE(b.status.ok());
  CHECK(b.events.back().chunks_reused() == 0);
  const pb::Manifest mb = b.events.back().manifest();
  REQUIRE(mb.chunks_size() == ma.chunks_size());
  for (int i = 0; i < ma.chunks_size(); ++i) {
    CHECK(mb.chunks(i).ref().chunk_hash() != ma.chunks(i).ref().chunk_hash());
  }
  // Deleting bob's copy leaves alice's intact.
  grpc::ClientContext dc;
  pb::DeleteContextRequest dr;
  dr.set_tenant("bob");
  dr.set_context_id("mine");
  pb::DeleteContextResponse dresp;
  REQUIRE(stub->DeleteContext(&dc, dr, &dresp).ok());
  CheckWholeContext(*stub, ma);
}

TEST_CASE("client cancellation frees the servers' streams (in-flight gauges back to 0)",
          "[harden][faults]") {
  const RunningService& inference = SharedInference();
  auto gauge = [](const RunningService& s, const std::string& method) {
    return MetricValue(s.metrics_address, "ctxstream_rpc_in_flight", {{"method", method}});
  };

  SECTION("Query -> Generate, cancelled after the first token") {
    RunningService controller = StartService(
        "controller", {"--inference=" + inference.grpc_address, "--kvcache=", "--compressor="});
    auto stub = ControllerStub(controller.grpc_address);
    grpc::ClientContext ctx;
    pb::QueryRequest req;
    req.set_context_text(DocText("03_manpages_man5_tzfile.5.txt", 1500));
    req.set_question("\nSummary:");
    req.set_max_tokens(400);
    req.set_temperature(1.0f);  // sampled: an early end-of-text is unlikely
    req.set_seed(7);
    auto reader = stub->Query(&ctx, req);
    pb::QueryEvent e;
    bool token = false;
    while (!token && reader->Read(&e)) token = e.has_token();
    REQUIRE(token);
    CHECK(gauge(controller, "Query") == 1);
    CHECK(gauge(inference, "Generate") == 1);
    ctx.TryCancel();
    CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
    CHECK(WaitFor([&] { return gauge(controller, "Query") == 0; }, 10s));
    CHECK(WaitFor([&] { return gauge(inference, "Generate") == 0; }, 10s));
    // The inference worker stopped generating: its log line says cancelled, not OK.
    std::string log;
    const bool logged = WaitFor(
        [&] {
          log = inference.process->DrainStderr(100ms);
          return log.find("status=Generate cancelled") != std::string::npos;
        },
        10s);
    INFO(log);
    CHECK(logged);
  }

  SECTION("Fetch of a paced chunk, cancelled after its first part") {
    RunningService kv = StartKvCache(inference.grpc_address,
                                     {"--store=memory", "--egress_bytes_per_second=100000"});
    auto stub = KvCacheStub(kv.grpc_address);
    IngestResult a = Ingest(*stub, IngestRequestFor("t", "a", DocTokens(256), {0}, true));
    REQUIRE(a.status.ok());
    grpc::ClientContext ctx;
    auto stream = stub->Fetch(&ctx);
    pb::FetchRequest req;
    req.set_tenant("t");
    req.set_context_id("a");
    req.set_chunk_index(0);
    req.set_encoding(pb::KV_ENCODING_RAW);  // ~786 KB: ~8 s at 100 KB/s
    REQUIRE(stream->Write(req));
    pb::FetchResponse resp;
    REQUIRE(stream->Read(&resp));
    CHECK(resp.part().data().size() < 786000);
    CHECK(gauge(kv, "Fetch") == 1);
    ctx.TryCancel();
    CHECK(stream->Finish().error_code() == grpc::StatusCode::CANCELLED);
    CHECK(WaitFor([&] { return gauge(kv, "Fetch") == 0; }, 10s));
    // The paced worker gave up: no fetched chunk was counted, and the pool serves again.
    CHECK(MetricValue(kv.metrics_address, "ctxstream_kvcache_fetch_chunks_total") == 0);
    auto [s, blobs] = Fetch(*stub, "t", "a", {{0, pb::KV_ENCODING_CACHEGEN, 0}});
    CHECK(s.ok());
    CHECK(blobs.size() == 1);
  }

  SECTION("Ingest of a long context, cancelled after its first chunk") {
    RunningService kv = StartKvCache(inference.grpc_address, {"--store=memory"});
    auto stub = KvCacheStub(kv.grpc_address);
    // 2,048 tokens in 64-token chunks, every level and both baselines: 32 chunks x 8 encodings.
    constexpr int kChunks = 32;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 120s);
    auto reader = stub->Ingest(&ctx, IngestRequestFor("t", "long", DocTokens(2048), {}, true, 64));
    pb::IngestProgress p;
    REQUIRE(reader->Read(&p));
    CHECK(p.chunks_done() >= 1);
    CHECK(p.chunks_total() == static_cast<uint32_t>(kChunks));
    ctx.TryCancel();
    CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
    CHECK(WaitFor([&] { return gauge(kv, "Ingest") == 0; }, 10s));
    CHECK(WaitFor([&] { return gauge(inference, "Prefill") == 0; }, 10s));
    // The worker stopped at its next chunk: logged as cancelled with chunks left undone, no
    // manifest committed, and far fewer encodings stored than the whole ingest makes.
    std::string log;
    const bool logged = WaitFor(
        [&] {
          log += kv.process->DrainStderr(100ms);
          return log.find("context=long") != std::string::npos;
        },
        10s);
    INFO(log);
    REQUIRE(logged);
    CHECK(log.find("status=CANCELLED") != std::string::npos);
    const double encoded = MetricValue(kv.metrics_address, "ctxstream_kvcache_ingest_chunks_total");
    CHECK(encoded >= 1);
    CHECK(encoded < kChunks * 8 / 2);
    pb::Manifest m;
    CHECK(GetManifest(*stub, "t", "long", &m).error_code() == grpc::StatusCode::NOT_FOUND);
    // The service is intact: the same context ingests to the end afterwards.
    IngestResult again = Ingest(*stub, IngestRequestFor("t", "long", DocTokens(2048), {3}, false));
    CHECK(again.status.ok());
  }
}

TEST_CASE(
    "an inference replica killed in the middle of a query: retried on the other or a "
    "clear error",
    "[harden][faults]") {
  RunningService r1 = StartInference(), r2 = StartInference();
  RunningService controller = StartService(
      "controller",
      {"--inference=" + r1.grpc_address + "," + r2.grpc_address, "--kvcache=", "--compressor="});
  auto stub = ControllerStub(controller.grpc_address);
  auto generating = [](const RunningService& r) {
    return MetricValue(r.metrics_address, "ctxstream_rpc_in_flight", {{"method", "Generate"}});
  };
  // Queries rotate over the replicas; the one that catches r1 inside Generate kills it there.
  bool killed = false;
  for (int attempt = 0; attempt < 4 && !killed; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 120s);
    pb::QueryRequest req;
    req.set_context_text(DocText("10_manpages_man7_posixoptions.7.txt", 3000));
    req.set_question("\nSummary:");
    req.set_max_tokens(8);
    auto reader = stub->Query(&ctx, req);
    pb::QueryEvent e;
    REQUIRE(reader->Read(&e));  // the plan: Generate is about to start
    // Text prefill of ~800 tokens takes a while; catch r1 in it.
    if (WaitFor([&] { return generating(r1) == 1 || generating(r2) == 1; }, 30s) &&
        generating(r1) == 1) {
      r1.process->Signal(SIGKILL);
      r1.process->WaitExit(10s);
      killed = true;
    }
    pb::QueryResult result;
    bool tokens = false;
    while (reader->Read(&e)) {
      tokens |= e.has_token();
      if (e.has_result()) result = e.result();
    }
    const grpc::Status s = reader->Finish();
    if (!killed) {
      REQUIRE(s.ok());
      continue;
    }
    INFO(s.error_message());
    WARN("replica killed inside Generate; query "
         << (s.ok() ? "retried on the other replica" : "failed: " + s.error_message()));
    if (s.ok()) {  // killed before a token was forwarded: retried on r2
      CHECK(result.inference_endpoint() == r2.grpc_address);
      CHECK(tokens);
    } else {  // tokens already forwarded: the error names the replica
      CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
      CHECK_THAT(s.error_message(), Catch::Contains(r1.grpc_address));
    }
  }
  REQUIRE(killed);
  // The surviving replica serves the next query.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 120s);
  pb::QueryRequest req;
  req.set_context_text("A short context.");
  req.set_question(" Next:");
  req.set_max_tokens(4);
  auto reader = stub->Query(&ctx, req);
  pb::QueryEvent e;
  pb::QueryResult result;
  while (reader->Read(&e)) {
    if (e.has_result()) result = e.result();
  }
  REQUIRE(reader->Finish().ok());
  CHECK(result.inference_endpoint() == r2.grpc_address);
}

}  // namespace ctx::harden
