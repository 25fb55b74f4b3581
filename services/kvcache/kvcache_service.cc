#include "services/kvcache/kvcache_service.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/obs/service_metrics.h"
#include "common/rpc/kv_parts.h"
#include "common/rpc/status.h"
#include "services/kvcache/egress_limiter.h"
#include "spdlog/spdlog.h"

namespace ctx::kvcache {
namespace {

namespace pb = ctxstream::v1;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Shared by the reactors: the object is deleted when both gRPC (OnDone) and the worker task
// holding it are finished with it.
class RefCounted {
 protected:
  virtual ~RefCounted() = default;
  void Ref() { refs_.fetch_add(1); }
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

 private:
  std::atomic<int> refs_{1};  // gRPC's reference, dropped in OnDone
};

// Ingest: one worker task runs the whole ingest; progress events are queued and written one
// at a time (a write reactor allows one outstanding write); Finish after the last write.
class IngestReactor final : public grpc::ServerWriteReactor<pb::IngestProgress>, RefCounted {
 public:
  IngestReactor(KvCacheService* service, const pb::IngestRequest* request)
      : service_(service), request_(*request) {
    Ref();
    absl::Status s = service_->ingest_pool().Submit([this] { Run(); });
    if (!s.ok()) {
      Unref();
      Finish(rpc::ToGrpcStatus(s));
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.pop_front();
    if (!ok) {
      broken_ = true;
      queue_.clear();
    }
    if (!queue_.empty()) {
      StartWrite(&queue_.front());
      return;
    }
    writing_ = false;
    if (finish_pending_) Finish(status_);
  }

  // The client left or its deadline passed: stop the ingest (and its Prefill) at once.
  void OnCancel() override { cancel_.Cancel(); }
  void OnDone() override { Unref(); }

 private:
  void Run() {
    const Clock::time_point t0 = Clock::now();
    obs::KvCacheMetrics::Get().IngestStarted();
    pb::IngestProgress last;
    absl::Status s = service_->core().Ingest(
        request_,
        [&](const pb::IngestProgress& p) {
          last = p;
          Enqueue(p);
        },
        &cancel_);
    const double secs = SecondsSince(t0);
    obs::KvCacheMetrics::Get().IngestFinished(s.ok(), secs);
    spdlog::info(
        "Ingest tenant={} context={} tokens={} chunks={} done={} reused={} bytes_stored={} "
        "prefill_s={:.3f} encode_s={:.3f} seconds={:.3f} status={}",
        request_.tenant(), request_.context_id(), request_.tokens().ids_size(), last.chunks_total(),
        last.chunks_done(), last.chunks_reused(), last.bytes_stored(), last.prefill_seconds(),
        last.encode_seconds(), secs, s.ToString());
    {
      std::lock_guard<std::mutex> lock(mu_);
      status_ = rpc::ToGrpcStatus(s);
      if (writing_) {
        finish_pending_ = true;
      } else {
        Finish(status_);
      }
    }
    Unref();
  }

  void Enqueue(const pb::IngestProgress& p) {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_) return;
    queue_.push_back(p);
    if (!writing_) {
      writing_ = true;
      StartWrite(&queue_.front());
    }
  }

  KvCacheService* service_;
  const pb::IngestRequest request_;
  IngestCancellation cancel_;
  std::mutex mu_;
  std::deque<pb::IngestProgress> queue_;  // front = the write in flight
  bool writing_ = false;
  bool broken_ = false;  // a write failed (client gone): drop further events
  bool finish_pending_ = false;
  grpc::Status status_;
};

// Fetch: reads run continuously (one outstanding); requests queue up and one worker task at
// a time serves them in order: store read, then parts paced by the stream's EgressLimiter,
// each write awaited before the next. The first request fixes (tenant, context) and loads
// the manifest; every chunk is looked up through it.
class FetchReactor final : public grpc::ServerBidiReactor<pb::FetchRequest, pb::FetchResponse>,
                           RefCounted {
 public:
  explicit FetchReactor(KvCacheService* service)
      : service_(service),
        limiter_(service->options().egress_bytes_per_second,
                 std::max(64.0 * 1024, service->options().egress_bytes_per_second / 20)),
        start_(Clock::now()) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    if (!ok || request_.done()) {
      reads_done_ = true;
      if (!worker_active_) FinishLocked(grpc::Status::OK);
      return;
    }
    pending_.push_back(request_);
    if (!worker_active_) {
      worker_active_ = true;
      Ref();
      absl::Status s = service_->io_pool().Submit([this] { Drain(); });
      if (!s.ok()) {
        worker_active_ = false;
        Unref();
        FinishLocked(rpc::ToGrpcStatus(s));
        return;
      }
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    write_ok_ = ok;
    cv_.notify_all();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }

  void OnDone() override {
    spdlog::info("Fetch tenant={} context={} chunks={} bytes={} seconds={:.3f} status={}", tenant_,
                 context_id_, chunks_sent_, bytes_sent_, SecondsSince(start_), final_status_);
    Unref();
  }

 private:
  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    final_status_ =
        status.ok()
            ? "OK"
            : absl::StrCat(
                  absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                  ": ", status.error_message());
    Finish(status);
  }

  void Drain() {
    for (;;) {
      pb::FetchRequest req;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (pending_.empty() || finished_) {
          worker_active_ = false;
          if (reads_done_) FinishLocked(grpc::Status::OK);
          lock.unlock();
          Unref();
          return;
        }
        req = std::move(pending_.front());
        pending_.pop_front();
      }
      absl::Status s = Serve(req);
      if (!s.ok()) {
        std::unique_lock<std::mutex> lock(mu_);
        worker_active_ = false;
        FinishLocked(rpc::ToGrpcStatus(s));
        lock.unlock();
        Unref();
        return;
      }
    }
  }

  absl::Status Serve(const pb::FetchRequest& req) {
    if (!manifest_) {
      if (req.tenant().empty() || req.context_id().empty()) {
        return absl::InvalidArgumentError(
            "the first FetchRequest must name the tenant and the context_id");
      }
      tenant_ = req.tenant();
      context_id_ = req.context_id();
      absl::StatusOr<pb::Manifest> m = service_->core().GetManifest(tenant_, context_id_);
      if (!m.ok()) return m.status();
      manifest_ = *std::move(m);
      schedule_ = service_->StreamEgressSchedule();
    } else if ((!req.tenant().empty() && req.tenant() != tenant_) ||
               (!req.context_id().empty() && req.context_id() != context_id_)) {
      return absl::InvalidArgumentError(
          absl::StrCat("a Fetch stream serves one context ('", context_id_, "' of tenant '",
                       tenant_, "'); open another stream for '", req.context_id(), "'"));
    }
    absl::StatusOr<ChunkBlob> blob = service_->core().ReadChunk(*manifest_, req);
    if (!blob.ok()) return blob.status();
    if (!schedule_.empty()) {
      const double rate = schedule_.RateAt(req.chunk_index(), SecondsSince(start_),
                                           service_->options().egress_bytes_per_second);
      // A small bucket (20 ms of traffic, >= 16 KiB): a scheduled rate is the link's rate from
      // the first byte, not after a free 64 KiB burst (1 s of a 64 kB/s link).
      limiter_.SetRate(rate, std::max(16.0 * 1024, rate / 50));
    }
    const size_t part_bytes = limiter_.PartBytes(rpc::kMaxKvPartBytes);
    std::vector<pb::KvChunkPart> parts =
        rpc::SplitKvChunk(blob->ref, blob->encoding, blob->level, blob->bytes, part_bytes);
    for (size_t i = 0; i < parts.size(); ++i) {
      limiter_.Acquire(static_cast<double>(parts[i].data().size()));
      std::unique_lock<std::mutex> lock(mu_);
      if (cancelled_) return absl::CancelledError("Fetch cancelled by the client");
      response_.Clear();
      *response_.mutable_part() = std::move(parts[i]);
      if (i + 1 == parts.size()) response_.set_server_read_seconds(blob->read_seconds);
      writing_ = true;
      StartWrite(&response_);
      cv_.wait(lock, [&] { return !writing_ || cancelled_; });
      if (writing_ || !write_ok_) return absl::CancelledError("Fetch stream broken by the client");
    }
    obs::KvCacheMetrics::Get().ObserveFetchChunk(blob->encoding == pb::KV_ENCODING_CACHEGEN
                                                     ? blob->level
                                                 : blob->encoding == pb::KV_ENCODING_RAW ? -1
                                                                                         : -2,
                                                 static_cast<double>(blob->bytes.size()));
    ++chunks_sent_;
    bytes_sent_ += blob->bytes.size();
    return absl::OkStatus();
  }

  KvCacheService* service_;
  EgressLimiter limiter_;    // used by the worker task only
  EgressSchedule schedule_;  // fixed when the first request arrives
  const Clock::time_point start_;
  pb::FetchRequest request_;    // read target
  pb::FetchResponse response_;  // write source

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<pb::FetchRequest> pending_;
  bool worker_active_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  bool writing_ = false;
  bool write_ok_ = true;
  std::string final_status_ = "unfinished";

  // Worker task state (one task at a time).
  std::optional<pb::Manifest> manifest_;
  std::string tenant_, context_id_;
  uint64_t chunks_sent_ = 0, bytes_sent_ = 0;
};

}  // namespace

EgressSchedule KvCacheService::StreamEgressSchedule() const {
  if (!options_.egress_schedule_file.empty()) {
    absl::StatusOr<EgressSchedule> s = EgressSchedule::ReadFile(options_.egress_schedule_file);
    if (!s.ok()) {
      spdlog::warn("--egress_schedule_file ignored: {}", s.status().ToString());
    } else if (!s->empty()) {
      return *std::move(s);
    }
  }
  return options_.egress_schedule;
}

KvCacheService::KvCacheService(std::unique_ptr<KvCacheCore> core, ServiceOptions options)
    : core_(std::move(core)),
      options_(options),
      io_pool_(options.io_threads, options.max_queued),
      ingest_pool_(options.ingest_threads, options.max_queued) {}

KvCacheService::~KvCacheService() = default;

grpc::ServerWriteReactor<pb::IngestProgress>* KvCacheService::Ingest(
    grpc::CallbackServerContext* /*context*/, const pb::IngestRequest* request) {
  return new IngestReactor(this, request);
}

grpc::ServerBidiReactor<pb::FetchRequest, pb::FetchResponse>* KvCacheService::Fetch(
    grpc::CallbackServerContext* /*context*/) {
  return new FetchReactor(this);
}

grpc::ServerUnaryReactor* KvCacheService::GetManifest(grpc::CallbackServerContext* context,
                                                      const pb::GetManifestRequest* request,
                                                      pb::Manifest* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status s = io_pool_.Submit([this, reactor, request, response] {
    absl::StatusOr<pb::Manifest> m = core_->GetManifest(request->tenant(), request->context_id());
    if (m.ok()) *response = *std::move(m);
    spdlog::info("GetManifest tenant={} context={} status={}", request->tenant(),
                 request->context_id(), m.status().ToString());
    reactor->Finish(rpc::ToGrpcStatus(m.status()));
  });
  if (!s.ok()) reactor->Finish(rpc::ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* KvCacheService::DeleteContext(grpc::CallbackServerContext* context,
                                                        const pb::DeleteContextRequest* request,
                                                        pb::DeleteContextResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status s = io_pool_.Submit([this, reactor, request, response] {
    absl::StatusOr<pb::DeleteContextResponse> r =
        core_->DeleteContext(request->tenant(), request->context_id());
    if (r.ok()) *response = *r;
    spdlog::info("DeleteContext tenant={} context={} deleted={} bytes_freed={} status={}",
                 request->tenant(), request->context_id(), r.ok() && r->deleted(),
                 r.ok() ? r->bytes_freed() : 0, r.status().ToString());
    reactor->Finish(rpc::ToGrpcStatus(r.status()));
  });
  if (!s.ok()) reactor->Finish(rpc::ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* KvCacheService::GetCodecInfo(grpc::CallbackServerContext* context,
                                                       const pb::GetCodecInfoRequest* /*request*/,
                                                       pb::CodecInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  *response = core_->GetCodecInfo();
  spdlog::info("GetCodecInfo levels={}", response->levels_size());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace ctx::kvcache
