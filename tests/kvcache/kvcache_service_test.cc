// The kvcache binary, started as a real process, against the in-test FIXTURE inference
// server (fixture_inference.h: KV computed in-process with ctx::model; the end-to-end test
// with the real inference service lives in tests/integration).
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/codec/codec.h"
#include "common/codec/profile.h"
#include "common/codec/quantizer.h"
#include "common/codec/wire_format.h"
#include "common/rpc/kv_parts.h"
#include "common/store/disk_store.h"
#include "common/tensor/dtype.h"
#include "ctxstream/v1/kvcache.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "services/kvcache/kvcache_core.h"
#include "tests/kvcache/fixture_inference.h"
#include "tests/store/redis_server.h"
#include "tests/support/child_process.h"
#include "tests/support/kvcache_calls.h"

namespace ctx::kvcache::testing {
namespace {

namespace pb = ctxstream::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kChunk = 256;

std::string ProfilePath() {
  return std::string(CTX_SOURCE_DIR) + "/models/tiny-llama/kvcodec.profile";
}
bool HaveProfile() { return std::ifstream(ProfilePath()).good(); }

// The codec the kvcache binary uses: the shipped profile, or default levels without it.
const codec::KvCodec& TestCodec() {
  static const codec::KvCodec* c = [] {
    const model::Model& m = TinyLlama();
    const codec::KvGeometry geo{m.config().num_layers, m.config().num_kv_heads,
                                m.config().head_dim};
    if (HaveProfile()) {
      std::ifstream in(ProfilePath(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      auto p = codec::ParseProfile(ss.str());
      REQUIRE(p.ok());
      return new codec::KvCodec(*codec::KvCodec::Create(*p));
    }
    return new codec::KvCodec(*codec::KvCodec::CreateDefault(m.fingerprint().bytes, geo));
  }();
  return *c;
}

// [BOS] + ids of tests/data/long_docs/00_*.txt, written by
// `kvquality --codec_profile= --dump_ids tests/data/long_doc00.ids.txt` (SentencePiece's
// bundled protobuf 3.14 aborts in a binary linked with gRPC's protobuf 3.21, so this test
// cannot tokenize by itself).
std::vector<int32_t> DocTokens(int n) {
  static std::vector<int32_t> ids = [] {
    std::ifstream in(std::string(CTX_SOURCE_DIR) + "/tests/data/long_doc00.ids.txt");
    std::vector<int32_t> v;
    int32_t id;
    while (in >> id) v.push_back(id);
    return v;
  }();
  REQUIRE(static_cast<int>(ids.size()) >= n);
  return std::vector<int32_t>(ids.begin(), ids.begin() + n);
}

// A running kvcache binary wired to the fixture inference server.
struct KvCacheProc {
  ctx::testing::RunningService svc;
  std::unique_ptr<pb::KvCache::Stub> stub;
};

KvCacheProc StartKvCache(const std::string& inference, std::vector<std::string> args) {
  args.push_back("--inference=" + inference);
  args.push_back("--codec_profile=" + (HaveProfile() ? ProfilePath() : std::string()));
  KvCacheProc p{ctx::testing::StartService("kvcache", args), nullptr};
  p.stub = pb::KvCache::NewStub(
      grpc::CreateChannel(p.svc.grpc_address, grpc::InsecureChannelCredentials()));
  return p;
}

using ctx::testing::Fetch;
using ctx::testing::FetchItem;
using ctx::testing::IngestRequestFor;
using ctx::testing::IngestResult;

IngestResult Ingest(pb::KvCache::Stub& stub, const std::string& tenant, const std::string& id,
                    const std::vector<int32_t>& tokens, bool baselines = true,
                    std::vector<int> levels = {}) {
  return ctx::testing::Ingest(
      stub, IngestRequestFor(tenant, id, tokens, std::move(levels), baselines, kChunk));
}

// In-process KV of tokens[a, b) as [layer][K|V][T][C] float32.
// (Forward runs once per token sequence: the last one is cached.)
std::vector<float> InProcessKv(const std::vector<int32_t>& tokens, int a, int b) {
  const model::Model& m = TinyLlama();
  static std::vector<int32_t> cached_tokens;
  static std::unique_ptr<model::KvCache> cache;
  if (!cache || cached_tokens != tokens) {
    cache = std::make_unique<model::KvCache>(m.NewKvCache(static_cast<int>(tokens.size())));
    REQUIRE(m.Forward(tokens, *cache, model::Logits::kNone, nullptr).ok());
    cached_tokens = tokens;
  }
  auto bytes = cache->Export(a, b, tensor::DType::kF32);
  REQUIRE(bytes.ok());
  std::vector<float> kv(bytes->size() / sizeof(float));
  std::memcpy(kv.data(), bytes->data(), bytes->size());
  return kv;
}

// Max over rows of |x - x̂| / bound(row), where bound = the quantizer's half step
// s/2 = max|x|/(2·MAX) for `bins` (+1 % for the fp16 rounding of the scale), or fp16's.
double WorstBoundRatio(const std::vector<float>& x, const std::vector<float>& y, int rows, int C,
                       std::function<int(int row)> bins_of_row) {
  double worst = 0;
  for (int r = 0; r < rows; ++r) {
    const int bins = bins_of_row(r);
    if (bins == 0) continue;  // slot not sent
    float mx = 0;
    for (int c = 0; c < C; ++c) mx = std::max(mx, std::fabs(x[r * C + c]));
    for (int c = 0; c < C; ++c) {
      const double err = std::fabs(x[r * C + c] - y[r * C + c]);
      const double bound = bins < 0 ? std::fabs(x[r * C + c]) / 2048.0 + 1e-7
                                    : 1.01 * mx / (2.0 * codec::MaxQ(bins)) + 1e-6;
      worst = std::max(worst, err / bound);
    }
  }
  return worst;
}

}  // namespace

TEST_CASE(
    "kvcache: Ingest, Fetch decodes within the quantizer bound, prefix reuse, isolation, "
    "delete") {
  FixtureInference inference(&TinyLlama());
  FixtureServer server(&inference);
  KvCacheProc kv = StartKvCache(server.address(), {"--store=memory"});
  const codec::KvCodec& codec = TestCodec();
  const int L = static_cast<int>(codec.profile().levels.size());
  const model::LlamaConfig& cfg = TinyLlama().config();
  const int C = cfg.num_kv_heads * cfg.head_dim;

  const std::vector<int32_t> a = DocTokens(600);  // chunks 256 + 256 + 88
  IngestResult ra = Ingest(*kv.stub, "alice", "ctx-a", a);
  REQUIRE(ra.status.ok());
  REQUIRE(!ra.events.empty());
  const pb::IngestProgress& fin = ra.events.back();
  CHECK(fin.committed());
  CHECK(fin.chunks_total() == 3);
  CHECK(fin.chunks_done() == 3);
  CHECK(fin.chunks_reused() == 0);
  const pb::Manifest& m = fin.manifest();
  CHECK(m.num_tokens() == 600);
  CHECK(m.tenant() == "alice");
  REQUIRE(m.chunks_size() == 3);
  CHECK(m.chunks(2).ref().token_begin() == 512);
  CHECK(m.chunks(2).ref().token_end() == 600);
  CHECK(inference.prefill_calls == 1);

  SECTION("sizes: raw > every level, int8 > every level but the near-lossless 0, decreasing") {
    for (const pb::ManifestChunk& c : m.chunks()) {
      REQUIRE(c.encodings_size() == L + 2);
      std::map<int, uint64_t> level_bytes;
      uint64_t raw = 0, q8 = 0;
      for (const pb::ChunkEncoding& e : c.encodings()) {
        if (e.encoding() == pb::KV_ENCODING_CACHEGEN) level_bytes[e.level()] = e.bytes();
        if (e.encoding() == pb::KV_ENCODING_RAW) raw = e.bytes();
        if (e.encoding() == pb::KV_ENCODING_QUANT8) q8 = e.bytes();
      }
      REQUIRE(static_cast<int>(level_bytes.size()) == L);
      CHECK(raw > q8);
      // Level 0 (near-lossless: 64 bins + 5 refinement bits, ~10.2 bits/el) is finer, and
      // larger, than the 8-bit baseline; every other level is far smaller.
      CHECK(raw > level_bytes[0]);
      CHECK(q8 > level_bytes[1]);
      for (int l = 1; l < L; ++l) CHECK(level_bytes[l] <= level_bytes[l - 1]);
      const uint64_t tokens = c.ref().token_end() - c.ref().token_begin();
      CHECK(raw >= tokens * 2 * cfg.num_layers * C * 2);  // fp16 + header
    }
    grpc::ClientContext ctx;
    pb::Manifest got;
    pb::GetManifestRequest req;
    req.set_tenant("alice");
    req.set_context_id("ctx-a");
    REQUIRE(kv.stub->GetManifest(&ctx, req, &got).ok());
    CHECK(got.SerializeAsString() == m.SerializeAsString());
  }

  SECTION("Fetch: every level and both baselines decode to the in-process KV within bounds") {
    std::vector<FetchItem> items;
    for (uint32_t c = 0; c < 3; ++c) {
      for (int l = 0; l < L; ++l) items.push_back({c, pb::KV_ENCODING_CACHEGEN, l});
      items.push_back({c, pb::KV_ENCODING_RAW, -1});
      items.push_back({c, pb::KV_ENCODING_QUANT8, -1});
    }
    auto [status, blobs] = Fetch(*kv.stub, "alice", "ctx-a", items);
    REQUIRE(status.ok());
    REQUIRE(blobs.size() == items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const pb::ManifestChunk& mc = m.chunks(static_cast<int>(items[i].chunk));
      const int ta = static_cast<int>(mc.ref().token_begin());
      const int tb = static_cast<int>(mc.ref().token_end());
      const int T = tb - ta;
      const std::vector<float> ref = InProcessKv(a, ta, tb);
      codec::DecodeOptions opts;
      opts.expected_fingerprint = TinyLlama().fingerprint().bytes;
      auto d = codec.Decode(blobs[i], opts);
      REQUIRE(d.ok());
      CHECK(d->header.token_begin == static_cast<uint64_t>(ta));
      const FetchItem& it = items[i];
      const double worst = WorstBoundRatio(ref, d->kv, 2 * cfg.num_layers * T, C, [&](int row) {
        const int slot = row / T;
        if (it.encoding == pb::KV_ENCODING_RAW) return -1;
        if (it.encoding == pb::KV_ENCODING_QUANT8) return 256;
        return codec.profile().levels[it.level].Bins(slot);
      });
      INFO("chunk " << it.chunk << " encoding " << it.encoding << " level " << it.level);
      CHECK(worst <= 1.0);
    }
  }

  SECTION("shared prefix: the second context reuses the first two chunks") {
    std::vector<int32_t> b = DocTokens(700);
    std::reverse(b.begin() + 512, b.end());  // same 512-token prefix, different suffix
    IngestResult rb = Ingest(*kv.stub, "alice", "ctx-b", b);
    REQUIRE(rb.status.ok());
    CHECK(rb.events.back().chunks_reused() == 2);
    CHECK(rb.events.back().manifest().chunks(0).ref().chunk_hash() ==
          m.chunks(0).ref().chunk_hash());
    CHECK(rb.events.back().manifest().chunks(2).ref().chunk_hash() !=
          m.chunks(2).ref().chunk_hash());
    // The same context again: everything reused, no prefill at all.
    const int calls = inference.prefill_calls;
    IngestResult again = Ingest(*kv.stub, "alice", "ctx-b2", b);
    REQUIRE(again.status.ok());
    CHECK(again.events.back().chunks_reused() == 3);
    CHECK(inference.prefill_calls == calls);

    SECTION("DeleteContext frees only chunks no other manifest of the tenant references") {
      grpc::ClientContext c1;
      pb::DeleteContextRequest del;
      del.set_tenant("alice");
      del.set_context_id("ctx-a");
      pb::DeleteContextResponse resp;
      REQUIRE(kv.stub->DeleteContext(&c1, del, &resp).ok());
      CHECK(resp.deleted());
      uint64_t chunk2 = 0;
      for (const pb::ChunkEncoding& e : m.chunks(2).encodings()) chunk2 += e.bytes();
      CHECK(resp.bytes_freed() == chunk2);  // chunks 0 and 1 are shared with ctx-b
      auto [s1, blobs1] = Fetch(*kv.stub, "alice", "ctx-b",
                                {{0, pb::KV_ENCODING_CACHEGEN, 0}, {1, pb::KV_ENCODING_RAW, -1}});
      CHECK(s1.ok());
      CHECK(blobs1.size() == 2);
      auto [s2, blobs2] = Fetch(*kv.stub, "alice", "ctx-a", {{0, pb::KV_ENCODING_CACHEGEN, 0}});
      CHECK(s2.error_code() == grpc::StatusCode::NOT_FOUND);
      grpc::ClientContext c2;
      REQUIRE(kv.stub->DeleteContext(&c2, del, &resp).ok());
      CHECK_FALSE(resp.deleted());
    }
  }

  SECTION("tenant isolation and requests outside the manifest") {
    auto [s1, b1] = Fetch(*kv.stub, "mallory", "ctx-a", {{0, pb::KV_ENCODING_RAW, -1}});
    CHECK(s1.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(b1.empty());
    grpc::ClientContext c;
    pb::GetManifestRequest req;
    req.set_tenant("mallory");
    req.set_context_id("ctx-a");
    pb::Manifest got;
    CHECK(kv.stub->GetManifest(&c, req, &got).error_code() == grpc::StatusCode::NOT_FOUND);
    // Mallory ingesting the same tokens gets different chunk hashes (tenant-scoped).
    IngestResult rm = Ingest(*kv.stub, "mallory", "ctx-m", a, false, {0});
    REQUIRE(rm.status.ok());
    CHECK(rm.events.back().chunks_reused() == 0);
    CHECK(rm.events.back().manifest().chunks(0).ref().chunk_hash() !=
          m.chunks(0).ref().chunk_hash());

    auto [s2, b2] = Fetch(*kv.stub, "alice", "ctx-a",
                          {{0, pb::KV_ENCODING_CACHEGEN, 0}, {3, pb::KV_ENCODING_CACHEGEN, 0}});
    CHECK(s2.error_code() == grpc::StatusCode::OUT_OF_RANGE);
    CHECK(b2.size() == 1);
    auto [s3, b3] = Fetch(*kv.stub, "alice", "ctx-a", {{0, pb::KV_ENCODING_CACHEGEN, L}});
    CHECK(s3.error_code() == grpc::StatusCode::NOT_FOUND);
    // ctx-m stored level 0 only and no baselines.
    auto [s4, b4] = Fetch(*kv.stub, "mallory", "ctx-m", {{0, pb::KV_ENCODING_QUANT8, -1}});
    CHECK(s4.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(s4.error_message().find("not stored") != std::string::npos);
  }

  SECTION("bad requests give clear codes") {
    CHECK(Ingest(*kv.stub, "a/b", "x", a).status.error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(Ingest(*kv.stub, "alice", "", a).status.error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(Ingest(*kv.stub, "alice", "empty", {}).status.error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
    IngestResult bad_level = Ingest(*kv.stub, "alice", "lv", a, false, {L + 5});
    CHECK(bad_level.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(bad_level.status.error_message().find("level") != std::string::npos);
    CHECK(Ingest(*kv.stub, "alice", "oov", {1, 5, 999999}).status.error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
    auto [s1, b1] = Fetch(*kv.stub, "", "", {{0, pb::KV_ENCODING_RAW, -1}});
    CHECK(s1.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    auto [s2, b2] = Fetch(*kv.stub, "alice", "ctx-a", {{0, pb::KV_ENCODING_UNSPECIFIED, 0}});
    CHECK(s2.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    auto [s3, b3] = Fetch(*kv.stub, "alice", "no-such", {{0, pb::KV_ENCODING_RAW, -1}});
    CHECK(s3.error_code() == grpc::StatusCode::NOT_FOUND);
    // A stream with no request at all just ends.
    auto [s4, b4] = Fetch(*kv.stub, "alice", "ctx-a", {});
    CHECK(s4.ok());
  }

  SECTION("metrics: ingest, encode bytes by level, fetch, store size") {
    auto [s, blobs] = Fetch(*kv.stub, "alice", "ctx-a", {{0, pb::KV_ENCODING_CACHEGEN, 0}});
    REQUIRE(s.ok());
    const std::string text = ctx::testing::HttpGet(kv.svc.metrics_address, "/metrics");
    CHECK(text.find("ctxstream_kvcache_ingests_total{result=\"ok\"} 1") != std::string::npos);
    CHECK(text.find("ctxstream_kvcache_ingest_tokens_total 600") != std::string::npos);
    CHECK(text.find("ctxstream_codec_encode_output_bytes_total{level=\"0\"}") != std::string::npos);
    CHECK(text.find("ctxstream_kvcache_fetch_chunks_total{level=\"0\"} 1") != std::string::npos);
    CHECK(text.find("ctxstream_store_hits_total{backend=\"memory\"} 1") != std::string::npos);
  }

  SECTION("GetCodecInfo lists the profile's levels") {
    grpc::ClientContext c;
    pb::CodecInfo info;
    REQUIRE(kv.stub->GetCodecInfo(&c, pb::GetCodecInfoRequest(), &info).ok());
    REQUIRE(info.levels_size() == L);
    CHECK(info.levels(0).key_bins_size() == cfg.num_layers);
    CHECK(info.quant8_bits_per_element() == Approx(8.0 + 16.0 / C));
    CHECK(info.model_fingerprint().size() == 16);
  }
}

TEST_CASE("kvcache: disk store survives a restart, missing blobs are NOT_FOUND, egress limit") {
  FixtureInference inference(&TinyLlama());
  FixtureServer server(&inference);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kvcache_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::vector<int32_t> a = DocTokens(512);
  pb::Manifest m;
  {
    KvCacheProc kv =
        StartKvCache(server.address(), {"--store=disk", "--store_dir=" + dir.string()});
    IngestResult r = Ingest(*kv.stub, "t1", "doc", a, true, {0});
    REQUIRE(r.status.ok());
    m = r.events.back().manifest();
    kv.svc.process->Signal(SIGKILL);
    kv.svc.process->WaitExit(5s);
  }
  {  // Remove one blob behind kvcache's back (as an eviction would).
    auto store = store::DiskStore::Open(dir);
    REQUIRE(store.ok());
    REQUIRE((*store)
                ->Delete(BlobKeyFor(m.chunks(1).ref().chunk_hash(), pb::KV_ENCODING_CACHEGEN, 0))
                .ok());
  }
  const double rate = 1e6;  // bytes/s
  KvCacheProc kv =
      StartKvCache(server.address(), {"--store=disk", "--store_dir=" + dir.string(),
                                      "--egress_bytes_per_second=" + std::to_string(rate)});
  grpc::ClientContext c;
  pb::GetManifestRequest req;
  req.set_tenant("t1");
  req.set_context_id("doc");
  pb::Manifest got;
  REQUIRE(kv.stub->GetManifest(&c, req, &got).ok());
  CHECK(got.SerializeAsString() == m.SerializeAsString());

  // Egress: a raw fp16 chunk (~786 KB) at 1 MB/s takes at least (N - burst) / rate.
  const Clock::time_point t0 = Clock::now();
  auto [s1, blobs] = Fetch(*kv.stub, "t1", "doc", {{0, pb::KV_ENCODING_RAW, -1}});
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  REQUIRE(s1.ok());
  REQUIRE(blobs.size() == 1);
  const double burst = std::max(64.0 * 1024, rate / 20);
  CHECK(secs >= (static_cast<double>(blobs[0].size()) - burst) / rate);

  auto [s2, b2] = Fetch(*kv.stub, "t1", "doc",
                        {{0, pb::KV_ENCODING_CACHEGEN, 0}, {1, pb::KV_ENCODING_CACHEGEN, 0}});
  CHECK(s2.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(s2.error_message().find("no longer in the store") != std::string::npos);
  CHECK(b2.size() == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("kvcache: a stored blob of another wire version or level coding is re-encoded") {
  FixtureInference inference(&TinyLlama());
  FixtureServer server(&inference);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kvcache_stale_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::vector<int32_t> a = DocTokens(512);  // two 256-token chunks
  const std::vector<std::string> flags = {"--store=disk", "--store_dir=" + dir.string()};
  pb::Manifest m;
  {
    KvCacheProc kv = StartKvCache(server.address(), flags);
    IngestResult r = Ingest(*kv.stub, "t1", "doc", a, false, {0});
    REQUIRE(r.status.ok());
    m = r.events.back().manifest();
    kv.svc.process->Signal(SIGKILL);
    kv.svc.process->WaitExit(5s);
  }
  const store::BlobKey key =
      BlobKeyFor(m.chunks(0).ref().chunk_hash(), pb::KV_ENCODING_CACHEGEN, 0);
  {  // Chunk 0 as an older build wrote it: same bytes, wire version 2.
    auto store = store::DiskStore::Open(dir);
    REQUIRE(store.ok());
    absl::StatusOr<std::string> blob = (*store)->Get(key);
    REQUIRE(blob.ok());
    std::string old = *blob;
    old[4] = 2;  // wire v2: before refinement bits
    old[5] = 0;
    REQUIRE_FALSE(codec::ParseChunk(old).ok());
    REQUIRE((*store)->Put(key, old).ok());
  }
  {
    KvCacheProc kv = StartKvCache(server.address(), flags);
    IngestResult again = Ingest(*kv.stub, "t1", "doc-again", a, false, {0});
    REQUIRE(again.status.ok());
    CHECK(again.events.back().chunks_reused() == 1);  // chunk 1 only; chunk 0 re-encoded
    kv.svc.process->Signal(SIGKILL);
    kv.svc.process->WaitExit(5s);
  }
  const store::BlobKey key1 =
      BlobKeyFor(m.chunks(1).ref().chunk_hash(), pb::KV_ENCODING_CACHEGEN, 0);
  std::string current1;
  {
    auto store = store::DiskStore::Open(dir);
    REQUIRE(store.ok());
    absl::StatusOr<std::string> blob = (*store)->Get(key);
    REQUIRE(blob.ok());
    CHECK(codec::ParseChunk(*blob).ok());
    // Chunk 1 as if level 0 had been recalibrated (same wire version and profile hash, other
    // refinement bits in its first slot): a valid v3 chunk, but no longer what level 0 codes.
    absl::StatusOr<std::string> b1 = (*store)->Get(key1);
    REQUIRE(b1.ok());
    current1 = *b1;
    auto parsed = codec::ParseChunk(*b1);
    REQUIRE(parsed.ok());
    std::string payload(parsed->payload);
    auto sections = codec::ReadSections(payload, 6);
    REQUIRE(sections.ok());
    const size_t dir0 = (*sections)[0].data() - payload.data();
    payload[dir0 + 2] = static_cast<char>(payload[dir0 + 2] ^ 1);
    std::string forged;
    codec::WriteChunk(parsed->header, payload, &forged);
    REQUIRE(codec::ParseChunk(forged).ok());
    REQUIRE((*store)->Put(key1, forged).ok());
  }
  {
    KvCacheProc kv = StartKvCache(server.address(), flags);
    IngestResult again = Ingest(*kv.stub, "t1", "doc-third", a, false, {0});
    REQUIRE(again.status.ok());
    CHECK(again.events.back().chunks_reused() == 1);  // chunk 0 only; chunk 1 re-encoded
    kv.svc.process->Signal(SIGKILL);
    kv.svc.process->WaitExit(5s);
  }
  auto store = store::DiskStore::Open(dir);
  REQUIRE(store.ok());
  absl::StatusOr<std::string> blob1 = (*store)->Get(key1);
  REQUIRE(blob1.ok());
  CHECK(*blob1 == current1);  // deterministic re-encode at the profile's level 0
  std::filesystem::remove_all(dir);
}

TEST_CASE("kvcache: Redis backend with a real redis-server") {
  if (store::testing::FindRedisServer().empty()) {
    WARN("redis-server not on PATH: skipped");
    return;
  }
  store::testing::RedisServer redis(store::testing::PickFreePort());
  REQUIRE(redis.Start());
  FixtureInference inference(&TinyLlama());
  FixtureServer server(&inference);
  KvCacheProc kv = StartKvCache(
      server.address(), {"--store=redis", "--redis=127.0.0.1:" + std::to_string(redis.port()),
                         "--redis_prefix=kvtest"});
  const std::vector<int32_t> a = DocTokens(300);
  IngestResult r = Ingest(*kv.stub, "t", "c", a, false, {0});
  REQUIRE(r.status.ok());
  CHECK(r.events.back().committed());
  auto [s, blobs] = Fetch(*kv.stub, "t", "c", {{1, pb::KV_ENCODING_CACHEGEN, 0}});
  REQUIRE(s.ok());
  REQUIRE(blobs.size() == 1);
  auto d = TestCodec().Decode(blobs[0]);
  REQUIRE(d.ok());
  CHECK(d->header.token_begin == 256);
  // A second kvcache replica on the same Redis sees the context.
  KvCacheProc kv2 = StartKvCache(
      server.address(), {"--store=redis", "--redis=127.0.0.1:" + std::to_string(redis.port()),
                         "--redis_prefix=kvtest"});
  auto [s2, blobs2] = Fetch(*kv2.stub, "t", "c", {{0, pb::KV_ENCODING_CACHEGEN, 0}});
  CHECK(s2.ok());
  CHECK(blobs2.size() == 1);
}

}  // namespace ctx::kvcache::testing
