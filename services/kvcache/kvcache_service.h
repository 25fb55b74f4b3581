// The kvcache service's gRPC handlers (callback API). Handlers are thin: each RPC's work runs
// on a WorkerPool (Ingest: prefill + encoding on `ingest_pool`; Fetch/GetManifest/Delete:
// store reads and paced sends on `io_pool`), so gRPC's callback threads never block.
// The logic lives in KvCacheCore (kvcache_core.h).
#pragma once

#include <memory>

#include "common/rpc/worker_pool.h"
#include "ctxstream/v1/kvcache.grpc.pb.h"
#include "services/kvcache/egress_schedule.h"
#include "services/kvcache/kvcache_core.h"

namespace ctx::kvcache {

struct ServiceOptions {
  double egress_bytes_per_second = 0;  // per Fetch stream; 0 = unlimited
  EgressSchedule egress_schedule;      // rate changes within a stream (egress_schedule.h)
  std::string egress_schedule_file;    // re-read when a stream opens; overrides the above
  size_t ingest_threads = 1;
  size_t io_threads = 8;  // concurrent Fetch streams being served (paced sends wait here)
  size_t max_queued = 256;
};

class KvCacheService final : public ctxstream::v1::KvCache::CallbackService {
 public:
  KvCacheService(std::unique_ptr<KvCacheCore> core, ServiceOptions options);
  ~KvCacheService() override;

  grpc::ServerWriteReactor<ctxstream::v1::IngestProgress>* Ingest(
      grpc::CallbackServerContext* context, const ctxstream::v1::IngestRequest* request) override;
  grpc::ServerBidiReactor<ctxstream::v1::FetchRequest, ctxstream::v1::FetchResponse>* Fetch(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetManifest(grpc::CallbackServerContext* context,
                                        const ctxstream::v1::GetManifestRequest* request,
                                        ctxstream::v1::Manifest* response) override;
  grpc::ServerUnaryReactor* DeleteContext(grpc::CallbackServerContext* context,
                                          const ctxstream::v1::DeleteContextRequest* request,
                                          ctxstream::v1::DeleteContextResponse* response) override;
  grpc::ServerUnaryReactor* GetCodecInfo(grpc::CallbackServerContext* context,
                                         const ctxstream::v1::GetCodecInfoRequest* request,
                                         ctxstream::v1::CodecInfo* response) override;

  KvCacheCore& core() { return *core_; }
  const ServiceOptions& options() const { return options_; }
  // The schedule for a stream opening now: --egress_schedule_file's when it holds one, else
  // --egress_schedule's (a malformed file is logged and ignored).
  EgressSchedule StreamEgressSchedule() const;
  rpc::WorkerPool& ingest_pool() { return ingest_pool_; }
  rpc::WorkerPool& io_pool() { return io_pool_; }

 private:
  std::unique_ptr<KvCacheCore> core_;
  const ServiceOptions options_;
  rpc::WorkerPool io_pool_;
  rpc::WorkerPool ingest_pool_;  // destroyed first: finishes queued ingests
};

}  // namespace ctx::kvcache
