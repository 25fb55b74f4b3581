#include "services/inference/kv_source_fetcher.h"

#include <algorithm>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/obs/service_metrics.h"
#include "common/policy/replanner.h"
#include "common/rpc/channel.h"
#include "common/rpc/kv_parts.h"
#include "ctxstream/v1/kvcache.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace ctx::inference {
namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = ctxstream::v1;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The cost model the controller handed over (AdaptationParams) plus chunk sizes from the
// kvcache manifest, in the form the replanner wants.
struct AdaptInputs {
  policy::CostModel cost;
  policy::ContextCosts context;
};

AdaptInputs MakeAdaptInputs(const v1::AdaptationParams& p, const v1::Manifest& manifest,
                            const std::vector<SegmentSpan>& segments) {
  AdaptInputs in;
  if (p.prefill_a() > 0 || p.prefill_b() > 0 || p.prefill_c() > 0) {
    in.cost.prefill = policy::PrefillModel({p.prefill_a(), p.prefill_b(), p.prefill_c()});
  }
  if (p.decode_bytes_per_second() > 0) {
    in.cost.decode.bytes_per_second = {p.decode_bytes_per_second()};
  }
  int levels = p.level_quality_loss_size();
  for (const auto& c : manifest.chunks()) {
    for (const auto& e : c.encodings()) {
      if (e.encoding() == v1::KV_ENCODING_CACHEGEN) levels = std::max(levels, e.level() + 1);
    }
  }
  in.context.chunk_bytes.assign(levels, std::vector<uint64_t>(segments.size(), 0));
  for (size_t i = 0; i < segments.size(); ++i) {
    in.context.chunk_tokens.push_back(segments[i].end - segments[i].begin);
    if (i < static_cast<size_t>(manifest.chunks_size())) {
      for (const auto& e : manifest.chunks(i).encodings()) {
        if (e.encoding() == v1::KV_ENCODING_CACHEGEN && e.level() >= 0 && e.level() < levels) {
          in.context.chunk_bytes[e.level()][i] = e.bytes();
        }
      }
    }
  }
  for (int k = 0; k < levels; ++k) {
    in.context.level_loss.push_back(k < p.level_quality_loss_size() ? p.level_quality_loss(k)
                                                                    : 0.0);
  }
  return in;
}

}  // namespace

KvSourceFetcher::KvSourceFetcher(v1::KvSource source, std::vector<SegmentSpan> segments,
                                 std::optional<std::chrono::system_clock::time_point> deadline,
                                 Inbox& inbox, DecisionSink on_decision)
    : source_(std::move(source)),
      segments_(std::move(segments)),
      deadline_(deadline),
      inbox_(inbox),
      on_decision_(std::move(on_decision)) {}

KvSourceFetcher::~KvSourceFetcher() { Stop(); }

void KvSourceFetcher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void KvSourceFetcher::Stop() {
  stop_ = true;
  {
    std::lock_guard<std::mutex> lock(ctx_mu_);
    if (active_ctx_ != nullptr) active_ctx_->TryCancel();
    if (manifest_ctx_ != nullptr) manifest_ctx_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void KvSourceFetcher::Fail(size_t segment, const std::string& reason) {
  InboundEvent e;
  e.kind = InboundEvent::Kind::kTextFrom;
  e.segment = segment;
  e.failure = true;
  e.reason = reason;
  inbox_.Push(std::move(e));
}

void KvSourceFetcher::Run() {
  const auto start = Clock::now();
  size_t first_kv = 0;
  while (first_kv < segments_.size() && !segments_[first_kv].kv) ++first_kv;
  if (first_kv == segments_.size()) return;  // nothing to fetch

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      rpc::MakeChannel(source_.kvcache_address());
  if (!channel.ok()) {
    Fail(first_kv, absl::StrCat("kvcache channel: ", channel.status().message()));
    return;
  }
  auto stub = v1::KvCache::NewStub(*channel);
  auto set_deadline = [&](grpc::ClientContext& ctx) {
    if (source_.fetch_deadline_seconds() > 0) {
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           std::chrono::duration<double>(source_.fetch_deadline_seconds())));
    } else if (deadline_) {
      ctx.set_deadline(*deadline_);
    }
  };

  // Adaptive mode needs every chunk's size per level: the manifest. It is read on its own
  // thread while the plan's first chunks stream (the controller planned them from the same
  // manifest a moment ago), so its round trip never delays the first KV byte; re-planning
  // starts with the first chunk decided after it arrived. A failed read only turns
  // re-planning off: a missing context or an unreachable kvcache fails the Fetch too.
  std::unique_ptr<AdaptInputs> adapt;
  std::unique_ptr<policy::StreamReplanner> replanner;
  std::future<std::pair<grpc::Status, v1::Manifest>> manifest_call;
  grpc::ClientContext mctx;
  std::vector<std::pair<double, double>> transfers;  // (bytes, seconds) before re-planning
  const double cold = source_.adaptation().bandwidth_estimate_bytes_per_second() > 0
                          ? source_.adaptation().bandwidth_estimate_bytes_per_second()
                          : 12.5e6;
  if (source_.adapt()) {
    set_deadline(mctx);
    {
      std::lock_guard<std::mutex> lock(ctx_mu_);
      if (stop_) return;
      manifest_ctx_ = &mctx;
    }
    manifest_call = std::async(std::launch::async, [this, &stub, &mctx] {
      v1::GetManifestRequest mreq;
      mreq.set_context_id(source_.context_id());
      mreq.set_tenant(source_.tenant());
      v1::Manifest manifest;
      grpc::Status ms = stub->GetManifest(&mctx, mreq, &manifest);
      return std::make_pair(ms, std::move(manifest));
    });
  }
  // Called before each chunk's decision: once the manifest is in, the replanner takes over
  // from chunk `next` on, knowing the transfers measured so far.
  auto start_replanner = [&](size_t next) {
    if (replanner || !manifest_call.valid() ||
        manifest_call.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      return;
    }
    auto [ms, manifest] = manifest_call.get();
    if (!ms.ok()) {
      spdlog::warn("kvcache GetManifest for {}: {}; following the plan without re-planning",
                   source_.context_id(), ms.error_message());
      return;
    }
    adapt =
        std::make_unique<AdaptInputs>(MakeAdaptInputs(source_.adaptation(), manifest, segments_));
    replanner = std::make_unique<policy::StreamReplanner>(
        adapt->cost, adapt->context, policy::BandwidthEstimator(0.5, cold),
        source_.adaptation().slo_ttft_seconds(), source_.adaptation().max_quality_loss());
    // A hybrid plan's text head: the worker prefills it while the tail below streams, so the
    // replanner counts its prefill as decoder backlog and re-plans only the tail.
    replanner->set_text_head(first_kv);
    for (const auto& [b, t] : transfers) replanner->ReportTransfer(b, t);
    replanner->SkipTo(next);
  };
  // Leaves no GetManifest running behind this function's locals.
  struct ManifestJoin {
    std::future<std::pair<grpc::Status, v1::Manifest>>& call;
    grpc::ClientContext& ctx;
    KvSourceFetcher* self;
    ~ManifestJoin() {
      if (call.valid()) {
        ctx.TryCancel();
        call.wait();
      }
      std::lock_guard<std::mutex> lock(self->ctx_mu_);
      self->manifest_ctx_ = nullptr;
    }
  } manifest_join{manifest_call, mctx, this};

  grpc::ClientContext ctx;
  set_deadline(ctx);
  {
    std::lock_guard<std::mutex> lock(ctx_mu_);
    if (stop_) return;
    active_ctx_ = &ctx;
  }
  auto stream = stub->Fetch(&ctx);
  const std::string link = "kvcache>inference";
  bool first_request = true;
  bool finished = false;  // stream->Finish() called
  double last_bps = 0;
  size_t i = 0;
  for (; i < segments_.size() && !stop_; ++i) {
    const SegmentSpan& seg = segments_[i];
    int level = seg.level;
    bool as_kv = seg.kv;
    v1::ChunkDecision d;
    d.set_chunk_index(static_cast<uint32_t>(i));
    d.set_measured_bytes_per_second(last_bps);
    start_replanner(i);
    if (replanner) {
      const policy::ChunkDecision pd = replanner->Decide(Seconds(Clock::now() - start));
      d.set_bandwidth_estimate_bytes_per_second(pd.estimate_bps);
      d.set_reason(pd.reason);
      if (as_kv) {
        as_kv = pd.level != policy::kTextLevel;
        level = pd.level;
      } else if (i >= first_kv) {
        d.set_reason("planned as text");
      }
    } else {
      d.set_reason(as_kv          ? (source_.adapt() ? "plan (chunk sizes not read yet)" : "plan")
                   : i < first_kv ? "text head (prefilled while the KV tail streams)"
                                  : "planned as text");
      if (source_.adapt()) d.set_bandwidth_estimate_bytes_per_second(cold);
    }
    d.set_form(as_kv ? v1::FORM_KV : v1::FORM_TEXT);
    d.set_level(as_kv ? level : -1);
    on_decision_(d);
    if (!seg.kv) continue;  // the caller's text segment: nothing to fetch
    if (!as_kv) {
      // The replanner switched to text: once text, the rest is text (prefilled on this KV).
      InboundEvent e;
      e.kind = InboundEvent::Kind::kTextFrom;
      e.segment = i;
      e.reason = d.reason();
      inbox_.Push(std::move(e));
      break;
    }
    v1::FetchRequest req;
    if (first_request) {
      req.set_context_id(source_.context_id());
      req.set_tenant(source_.tenant());
      first_request = false;
    }
    req.set_chunk_index(static_cast<uint32_t>(i));
    req.set_encoding(level >= 0 ? v1::KV_ENCODING_CACHEGEN : v1::KV_ENCODING_RAW);
    req.set_level(level);
    const auto t0 = Clock::now();
    if (!stream->Write(req)) {
      grpc::Status s = stream->Finish();
      finished = true;
      Fail(i, absl::StrCat("kvcache Fetch: ", s.ok() ? "stream closed" : s.error_message()));
      break;
    }
    rpc::KvPartAssembler assembler(uint64_t{1} << 30);
    std::optional<rpc::KvChunk> chunk;
    v1::FetchResponse resp;
    std::string error;
    while (!chunk && error.empty()) {
      if (!stream->Read(&resp)) {
        grpc::Status s = stream->Finish();
        finished = true;
        error = absl::StrCat("kvcache Fetch of chunk ", i, ": ",
                             s.ok() ? "stream ended early" : s.error_message());
        break;
      }
      absl::StatusOr<std::optional<rpc::KvChunk>> r = assembler.Add(resp.part());
      if (!r.ok()) {
        error = absl::StrCat("kvcache Fetch of chunk ", i, ": ", r.status().message());
      } else if (r->has_value()) {
        chunk = std::move(**r);
      }
    }
    if (!error.empty()) {
      if (!stop_) Fail(i, error);
      break;
    }
    const double secs = Seconds(Clock::now() - t0);
    const double bytes = static_cast<double>(chunk->bytes.size());
    if (secs > 0) last_bps = bytes / secs;
    if (replanner) {
      replanner->ReportTransfer(bytes, secs);
    } else {
      transfers.emplace_back(bytes, secs);
    }
    obs::InferenceMetrics::Get().ObserveFetchChunk(link, level, bytes, secs);
    InboundEvent e;
    e.kind = InboundEvent::Kind::kFetched;
    e.segment = i;
    e.chunk = std::move(*chunk);
    e.fetch_seconds = secs;
    inbox_.Push(std::move(e));
  }
  if (!finished) {
    // Tell kvcache we need nothing more; cancel instead when we stopped early.
    const bool clean = i >= segments_.size() && !stop_;
    v1::FetchRequest done;
    done.set_done(true);
    if (clean) stream->Write(done);
    stream->WritesDone();
    if (!clean) ctx.TryCancel();
    stream->Finish().ok();
  }
  std::lock_guard<std::mutex> lock(ctx_mu_);
  active_ctx_ = nullptr;
}

}  // namespace ctx::inference
