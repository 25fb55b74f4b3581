// Shared helpers of the hardening tests (tests/harden): real service binaries on 127.0.0.1
// ephemeral ports, their /metrics, a redis-server with an append-only file, KV ingest/fetch.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/codec/codec.h"
#include "ctxstream/v1/controller.grpc.pb.h"
#include "ctxstream/v1/kvcache.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/kvcache_calls.h"

namespace ctx::harden {

namespace pb = ctxstream::v1;
using ctx::testing::RunningService;

// One real inference server (tiny-llama) for the whole test binary, started on first use.
const RunningService& SharedInference();
// A fresh inference server (for tests that kill it).
RunningService StartInference();
// kvcache against `inference` with the shipped codec profile plus `args`.
RunningService StartKvCache(const std::string& inference, std::vector<std::string> args);

std::unique_ptr<pb::KvCache::Stub> KvCacheStub(const std::string& address);
std::unique_ptr<pb::Controller::Stub> ControllerStub(const std::string& address);

// Tokens [offset, offset + n) of tests/data/long_doc00.ids.txt (2,000+ ids).
std::vector<int32_t> DocTokens(int n, int offset = 0);
// The first `bytes` bytes of tests/data/long_docs/<name>.
std::string DocText(const std::string& name, size_t bytes);

// kvcache calls shared with tests/kvcache (tests/support/kvcache_calls.h).
using ctx::testing::AllItems;
using ctx::testing::Fetch;
using ctx::testing::FetchItem;
using ctx::testing::Ingest;
using ctx::testing::IngestRequestFor;
using ctx::testing::IngestResult;

// The codec kvcache uses (models/tiny-llama/kvcodec.profile).
const codec::KvCodec& ProfileCodec();

// Sum of the samples of metric `name` whose labels include every `labels` pair (0 if none).
double MetricValue(const std::string& metrics_address, const std::string& name,
                   const std::map<std::string, std::string>& labels = {});
// Polls `done` every 50 ms until it is true or `timeout` passes; returns its last value.
bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout);

// A TCP listener that accepts connections and never answers: a backend that hangs.
class BlackHole {
 public:
  BlackHole();
  ~BlackHole();
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// redis-server on `port` with an append-only file under `dir` (fsync always): a restart on
// the same port and directory keeps the data. Empty FindRedis() -> tests skip.
std::string FindRedis();
int FreePort();
std::unique_ptr<ctx::testing::ChildProcess> StartRedis(int port, const std::string& dir);

// VmRSS of a process in KiB (0 if unreadable).
long RssKiB(pid_t pid);

}  // namespace ctx::harden
