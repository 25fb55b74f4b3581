// ctxstream-kvcache: see README.md in this folder.
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/codec/profile.h"
#include "common/rpc/server.h"
#include "common/store/disk_store.h"
#include "common/store/memory_store.h"
#include "common/store/redis_store.h"
#include "services/kvcache/kvcache_service.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, codec_profile, "auto",
          "codec profile written by tools/calibrate; 'auto' = models/tiny-llama/kvcodec.profile "
          "when readable (else as empty, with a warning); empty = the codec's default levels "
          "without static tables (every chunk carries its own tables)");
ABSL_FLAG(std::string, inference, "", "host:port of an inference replica (Prefill, GetModelInfo)");
ABSL_FLAG(std::string, store, "memory", "chunk store backend: memory | disk | redis");
ABSL_FLAG(std::string, store_dir, "", "directory of the disk store");
ABSL_FLAG(uint64_t, store_capacity_bytes, 0,
          "byte cap for memory/disk stores, LRU eviction of chunk blobs (0 = none; memory "
          "store: 0 means 1 GiB)");
ABSL_FLAG(std::string, redis, "127.0.0.1:6379", "Redis host:port for --store=redis");
ABSL_FLAG(std::string, redis_prefix, "ctx", "key prefix in Redis");
ABSL_FLAG(double, egress_bytes_per_second, 0,
          "per-Fetch-stream token bucket on bytes sent, to emulate a slow link (0 = unlimited)");
ABSL_FLAG(std::string, egress_schedule, "",
          "rate changes within each Fetch stream: RATE[@Nc|@Ts],... (bytes/s from chunk N or "
          "T seconds on; see services/kvcache/egress_schedule.h)");
ABSL_FLAG(std::string, egress_schedule_file, "",
          "file holding an --egress_schedule spec, read whenever a Fetch stream opens (change "
          "the emulated link without a restart); missing/empty = --egress_schedule");
ABSL_FLAG(uint32_t, chunk_tokens, 256, "tokens per chunk when IngestRequest.chunk_tokens is 0");
ABSL_FLAG(uint32_t, encode_threads, 1, "worker threads for ingests (prefill calls + encoding)");
ABSL_FLAG(uint32_t, fetch_threads, 8, "worker threads serving Fetch streams and store reads");

namespace {

absl::StatusOr<std::unique_ptr<ctx::store::ChunkStore>> OpenStore() {
  const std::string kind = absl::GetFlag(FLAGS_store);
  const uint64_t cap = absl::GetFlag(FLAGS_store_capacity_bytes);
  if (kind == "memory") {
    return std::unique_ptr<ctx::store::ChunkStore>(
        std::make_unique<ctx::store::MemoryStore>(cap == 0 ? (1ull << 30) : cap));
  }
  if (kind == "disk") {
    if (absl::GetFlag(FLAGS_store_dir).empty()) {
      return absl::InvalidArgumentError("--store=disk needs --store_dir");
    }
    auto s = ctx::store::DiskStore::Open(absl::GetFlag(FLAGS_store_dir), cap);
    if (!s.ok()) return s.status();
    return std::unique_ptr<ctx::store::ChunkStore>(*std::move(s));
  }
  if (kind == "redis") {
    ctx::store::RedisStore::Options o;
    std::vector<std::string> hp = absl::StrSplit(absl::GetFlag(FLAGS_redis), ':');
    if (hp.size() != 2 || !absl::SimpleAtoi(hp[1], &o.port)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--redis must be host:port, got '", absl::GetFlag(FLAGS_redis), "'"));
    }
    o.host = hp[0];
    o.prefix = absl::GetFlag(FLAGS_redis_prefix);
    auto s = ctx::store::RedisStore::Connect(o);
    if (!s.ok()) return s.status();
    return std::unique_ptr<ctx::store::ChunkStore>(*std::move(s));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--store must be memory, disk or redis, got '", kind, "'"));
}

absl::StatusOr<std::optional<ctx::codec::CodecProfile>> LoadProfile() {
  std::string path = absl::GetFlag(FLAGS_codec_profile);
  if (path == "auto") {
    path = "models/tiny-llama/kvcodec.profile";
    if (!std::ifstream(path)) {
      spdlog::warn("no {} here: using the default levels without static tables", path);
      return std::optional<ctx::codec::CodecProfile>();
    }
  }
  if (path.empty()) return std::optional<ctx::codec::CodecProfile>();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read --codec_profile ", path,
                                            " (run tools/calibrate, or pass --codec_profile=)"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto p = ctx::codec::ParseProfile(ss.str());
  if (!p.ok()) {
    return absl::Status(p.status().code(), absl::StrCat(path, ": ", p.status().message()));
  }
  return std::optional<ctx::codec::CodecProfile>(*std::move(p));
}

}  // namespace

int main(int argc, char** argv) {
  ctx::rpc::ServerMain server_main("kvcache", argc, argv);
  auto profile = LoadProfile();
  if (!profile.ok()) return server_main.Fail(profile.status());
  auto store = OpenStore();
  if (!store.ok()) return server_main.Fail(store.status());

  ctx::kvcache::KvCacheOptions options;
  options.inference_address = absl::GetFlag(FLAGS_inference);
  options.chunk_tokens = absl::GetFlag(FLAGS_chunk_tokens);
  options.store_backend = absl::GetFlag(FLAGS_store);
  if (options.chunk_tokens == 0) {
    return server_main.Fail(absl::InvalidArgumentError("--chunk_tokens must be > 0"));
  }
  ctx::kvcache::ServiceOptions service_options;
  service_options.egress_bytes_per_second = absl::GetFlag(FLAGS_egress_bytes_per_second);
  absl::StatusOr<ctx::kvcache::EgressSchedule> schedule =
      ctx::kvcache::EgressSchedule::Parse(absl::GetFlag(FLAGS_egress_schedule));
  if (!schedule.ok()) return server_main.Fail(schedule.status());
  service_options.egress_schedule = *std::move(schedule);
  service_options.egress_schedule_file = absl::GetFlag(FLAGS_egress_schedule_file);
  if (!service_options.egress_schedule_file.empty()) {
    absl::StatusOr<ctx::kvcache::EgressSchedule> f =
        ctx::kvcache::EgressSchedule::ReadFile(service_options.egress_schedule_file);
    if (!f.ok()) return server_main.Fail(f.status());
  }
  service_options.ingest_threads = std::max<uint32_t>(1, absl::GetFlag(FLAGS_encode_threads));
  service_options.io_threads = std::max<uint32_t>(1, absl::GetFlag(FLAGS_fetch_threads));

  ctx::kvcache::KvCacheService service(
      std::make_unique<ctx::kvcache::KvCacheCore>(*std::move(store), *std::move(profile), options),
      service_options);
  return server_main.Serve({&service});
}
