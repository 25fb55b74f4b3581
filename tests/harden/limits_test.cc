// Limits, each enforced with RESOURCE_EXHAUSTED and a message that names the limit:
// concurrent streams per tenant (controller), context tokens (controller), message bytes
// (every server), store capacity (kvcache: LRU eviction of committed contexts' chunks, and a
// context that cannot fit as a whole refused before it commits).
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "tests/harden/harden_support.h"

namespace ctx::harden {
namespace {

using namespace std::chrono_literals;
using ctx::testing::StartService;

// Opens a Query stream of `key`'s tenant and reads until its status (bounded by `deadline`).
struct QueryCall {
  QueryCall(pb::Controller::Stub& stub, const std::string& key, std::chrono::seconds deadline) {
    ctx.AddMetadata("x-api-key", key);
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    pb::QueryRequest req;
    req.set_context_text("a context that is never tokenized");
    req.set_question("?");
    reader = stub.Query(&ctx, req);
  }
  grpc::Status Finish() {
    pb::QueryEvent e;
    while (reader->Read(&e)) {
    }
    return reader->Finish();
  }
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<pb::QueryEvent>> reader;
};

grpc::Status Register(pb::Controller::Stub& stub, const std::string& key, const std::string& text,
                      pb::RegisterProgress* last = nullptr) {
  grpc::ClientContext ctx;
  if (!key.empty()) ctx.AddMetadata("x-api-key", key);
  ctx.set_deadline(std::chrono::system_clock::now() + 60s);
  pb::RegisterContextRequest req;
  req.set_text(text);
  auto reader = stub.RegisterContext(&ctx, req);
  pb::RegisterProgress p;
  while (reader->Read(&p)) {
    if (last != nullptr) *last = p;
  }
  return reader->Finish();
}

}  // namespace

TEST_CASE("controller: concurrent streams per tenant are capped (--max_streams_per_tenant)",
          "[harden][limits]") {
  // The inference "replica" accepts connections and never answers, so a Query holds its
  // stream until its deadline: the count of open streams is deterministic.
  BlackHole inference;
  RunningService controller =
      StartService("controller", {"--inference=" + inference.address(),
                                  "--kvcache=", "--compressor=", "--api_keys=ka:alice,kb:bob",
                                  "--allow_anonymous=false", "--max_streams_per_tenant=2"});
  auto stub = ControllerStub(controller.grpc_address);
  const std::map<std::string, std::string> query_labels = {{"method", "Query"}};
  auto in_flight = [&] {
    return MetricValue(controller.metrics_address, "ctxstream_rpc_in_flight", query_labels);
  };

  QueryCall a1(*stub, "ka", 4s), a2(*stub, "ka", 4s);
  REQUIRE(WaitFor([&] { return in_flight() == 2; }, 10s));

  // alice's third stream, Query or RegisterContext, is refused at once with the limit named.
  QueryCall a3(*stub, "ka", 30s);
  const grpc::Status s3 = a3.Finish();
  CHECK(s3.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(s3.error_message(), Catch::Contains("tenant 'alice' already has 2 streams open"));
  CHECK_THAT(s3.error_message(), Catch::Contains("--max_streams_per_tenant=2"));
  const grpc::Status r3 = Register(*stub, "ka", "some text");
  CHECK(r3.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(r3.error_message(), Catch::StartsWith("RegisterContext: tenant 'alice'"));

  // bob is not affected: his stream is admitted (and hangs on the backend like alice's).
  QueryCall b1(*stub, "kb", 1s);
  CHECK(b1.Finish().error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED);

  // alice's streams end at their deadline; their slots come back.
  CHECK(a1.Finish().error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(a2.Finish().error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  REQUIRE(WaitFor([&] { return in_flight() == 0; }, 10s));
  QueryCall a4(*stub, "ka", 1s);
  CHECK(a4.Finish().error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(MetricValue(controller.metrics_address, "ctxstream_rpc_requests_total",
                    {{"method", "Query"}, {"code", "RESOURCE_EXHAUSTED"}}) == 1);
}

TEST_CASE("controller: a context above --max_context_tokens is refused before it is saved",
          "[harden][limits]") {
  RunningService controller =
      StartService("controller", {"--inference=" + SharedInference().grpc_address,
                                  "--kvcache=", "--compressor=", "--max_context_tokens=100"});
  auto stub = ControllerStub(controller.grpc_address);

  const grpc::Status big = Register(*stub, "", DocText("01_git-doc_git-subtree.txt", 2000));
  CHECK(big.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(big.error_message(), Catch::Contains("this controller accepts at most 100 tokens"));
  CHECK_THAT(big.error_message(), Catch::Contains("--max_context_tokens"));

  // Nothing of it was registered; a small context still is.
  grpc::ClientContext lc;
  pb::ListContextsResponse list;
  REQUIRE(stub->ListContexts(&lc, pb::ListContextsRequest(), &list).ok());
  CHECK(list.contexts_size() == 0);
  pb::RegisterProgress last;
  REQUIRE(Register(*stub, "", "A short document about HTTP status codes.", &last).ok());
  CHECK(last.tokens() > 0);
  CHECK(last.tokens() <= 100);
}

TEST_CASE("every server: a message above --max_message_bytes is RESOURCE_EXHAUSTED",
          "[harden][limits]") {
  SECTION("controller: RegisterContext with 100 KB of text, limit 64 KiB") {
    RunningService controller =
        StartService("controller", {"--inference=" + SharedInference().grpc_address,
                                    "--kvcache=", "--compressor=", "--max_message_bytes=65536"});
    auto stub = ControllerStub(controller.grpc_address);
    const grpc::Status s = Register(*stub, "", std::string(100000, 'x'));
    CHECK(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    INFO(s.error_message());
    CHECK_THAT(s.error_message(), Catch::Contains("larger than max"));
    // Below the limit the same server works.
    CHECK(Register(*stub, "", std::string(1000, 'x')).ok());
  }
  SECTION("kvcache: Ingest of 40,000 token ids, limit 64 KiB") {
    RunningService kv = StartKvCache(SharedInference().grpc_address,
                                     {"--store=memory", "--max_message_bytes=65536"});
    auto stub = KvCacheStub(kv.grpc_address);
    std::vector<int32_t> many(40000, 1000);
    const IngestResult r = Ingest(*stub, IngestRequestFor("t", "huge", many, {0}, false));
    CHECK(r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK(r.events.empty());
  }
}

TEST_CASE(
    "kvcache store capacity: LRU eviction end to end, a context larger than the store "
    "is refused",
    "[harden][limits]") {
  const std::string inference = SharedInference().grpc_address;
  const std::vector<int32_t> doc_a = DocTokens(512, 0), doc_b = DocTokens(512, 600);
  const std::vector<int> levels = {0, 3};

  // Size of one context at these levels, from an uncapped kvcache (once for all sections).
  static uint64_t context_bytes = 0, largest_chunk = 0;
  if (context_bytes == 0) {
    RunningService probe = StartKvCache(inference, {"--store=memory"});
    auto stub = KvCacheStub(probe.grpc_address);
    IngestResult r = Ingest(*stub, IngestRequestFor("t", "probe", doc_a, levels, false));
    REQUIRE(r.status.ok());
    for (const auto& c : r.events.back().manifest().chunks()) {
      uint64_t chunk = 0;
      for (const auto& e : c.encodings()) chunk += e.bytes();
      context_bytes += chunk;
      largest_chunk = std::max(largest_chunk, chunk);
    }
  }
  REQUIRE(context_bytes > 0);

  SECTION("room for 1.5 contexts: the least recently used context's chunks are evicted") {
    const uint64_t cap = context_bytes * 3 / 2;
    RunningService kv = StartKvCache(
        inference, {"--store=memory", "--store_capacity_bytes=" + std::to_string(cap)});
    auto stub = KvCacheStub(kv.grpc_address);
    IngestResult ra = Ingest(*stub, IngestRequestFor("t", "a", doc_a, levels, false));
    REQUIRE(ra.status.ok());
    IngestResult rb = Ingest(*stub, IngestRequestFor("t", "b", doc_b, levels, false));
    REQUIRE(rb.status.ok());
    CHECK(MetricValue(kv.metrics_address, "ctxstream_store_evictions_total") > 0);
    CHECK(MetricValue(kv.metrics_address, "ctxstream_store_size_bytes") <= cap);

    // b (most recent) is whole and decodes; a's first chunk went first (LRU) and is reported
    // NOT_FOUND with what to do, never as corrupt bytes. Its manifest (small) is kept.
    const pb::Manifest mb = rb.events.back().manifest();
    auto [sb, blobs] = Fetch(*stub, "t", "b", AllItems(mb));
    REQUIRE(sb.ok());
    REQUIRE(blobs.size() == AllItems(mb).size());
    for (const std::string& bytes : blobs) CHECK(ProfileCodec().Decode(bytes).ok());
    auto [sa, got] = Fetch(*stub, "t", "a", {{0, pb::KV_ENCODING_CACHEGEN, 0}});
    CHECK(sa.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK_THAT(sa.error_message(), Catch::Contains("no longer in the store (evicted or deleted)"));
    CHECK(got.empty());
    grpc::ClientContext mc;
    pb::GetManifestRequest mr;
    mr.set_tenant("t");
    mr.set_context_id("a");
    pb::Manifest ma;
    CHECK(stub->GetManifest(&mc, mr, &ma).ok());
  }

  SECTION("room for one chunk but not the context: RESOURCE_EXHAUSTED, nothing committed") {
    const uint64_t cap = largest_chunk + largest_chunk / 2;
    REQUIRE(cap < context_bytes);
    RunningService kv = StartKvCache(
        inference, {"--store=memory", "--store_capacity_bytes=" + std::to_string(cap)});
    auto stub = KvCacheStub(kv.grpc_address);
    IngestResult r = Ingest(*stub, IngestRequestFor("t", "a", doc_a, levels, false));
    CHECK(r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK_THAT(r.status.error_message(),
               Catch::Contains("the store holds at most " + std::to_string(cap) + " bytes"));
    for (const auto& e : r.events) CHECK_FALSE(e.committed());
    grpc::ClientContext mc;
    pb::GetManifestRequest mr;
    mr.set_tenant("t");
    mr.set_context_id("a");
    pb::Manifest ma;
    CHECK(stub->GetManifest(&mc, mr, &ma).error_code() == grpc::StatusCode::NOT_FOUND);
  }

  SECTION("a single blob larger than the store: RESOURCE_EXHAUSTED naming the blob") {
    RunningService kv = StartKvCache(inference, {"--store=memory", "--store_capacity_bytes=1000"});
    auto stub = KvCacheStub(kv.grpc_address);
    IngestResult r = Ingest(*stub, IngestRequestFor("t", "a", doc_a, levels, false));
    CHECK(r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK_THAT(r.status.error_message(), Catch::Contains("1000 bytes"));
  }
}

}  // namespace ctx::harden
