#include "services/controller/query_engine.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/obs/service_metrics.h"
#include "common/policy/cost_model.h"
#include "common/policy/planner.h"
#include "common/policy/prefill_model.h"
#include "grpcpp/client_context.h"
#include "spdlog/spdlog.h"

namespace ctx::controller {

namespace pb = ctxstream::v1;
using SteadyClock = std::chrono::steady_clock;

namespace {

double SecondsSince(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

double SecondsLeft(QueryEngine::Clock::time_point deadline) {
  return std::chrono::duration<double>(deadline - QueryEngine::Clock::now()).count();
}

// Outbound deadline: the query's, capped at `cap_s` from now for small calls.
void SetDeadline(grpc::ClientContext* ctx, QueryEngine::Clock::time_point deadline,
                 double cap_s = 0) {
  if (cap_s > 0) {
    const auto cap =
        QueryEngine::Clock::now() + std::chrono::duration_cast<QueryEngine::Clock::duration>(
                                        std::chrono::duration<double>(cap_s));
    deadline = std::min(deadline, cap);
  }
  ctx->set_deadline(deadline);
}

grpc::Status Error(grpc::StatusCode code, absl::string_view msg) {
  return grpc::Status(code, std::string(msg));
}

grpc::Status Wrap(const grpc::Status& s, absl::string_view what) {
  return grpc::Status(s.error_code(), absl::StrCat(what, ": ", s.error_message()));
}

pb::Form ToProto(policy::Form f) {
  switch (f) {
    case policy::Form::kText:
      return pb::FORM_TEXT;
    case policy::Form::kCompressedText:
      return pb::FORM_COMPRESSED_TEXT;
    case policy::Form::kKv:
      return pb::FORM_KV;
  }
  return pb::FORM_UNSPECIFIED;
}

obs::Form ToObs(policy::Form f) {
  switch (f) {
    case policy::Form::kText:
      return obs::Form::kText;
    case policy::Form::kCompressedText:
      return obs::Form::kCompressedText;
    case policy::Form::kKv:
      return obs::Form::kKv;
  }
  return obs::Form::kText;
}

obs::Form ToObs(pb::Form f) {
  if (f == pb::FORM_KV) return obs::Form::kKv;
  if (f == pb::FORM_COMPRESSED_TEXT) return obs::Form::kCompressedText;
  return obs::Form::kText;
}

// A retryable inference failure: the replica is gone or refused, not the request is bad.
bool Retryable(const grpc::Status& s) { return s.error_code() == grpc::StatusCode::UNAVAILABLE; }

void FillInfo(const ContextRecord& r, pb::ContextInfo* out) {
  out->set_context_id(r.context_id);
  out->set_name(r.name);
  out->set_tokens(static_cast<uint32_t>(r.tokens.size()));
  out->set_chunks(r.chunks);
  out->set_kv_ready(r.kv_ready);
  out->set_has_compressed(!r.compressed_tokens.empty());
  out->set_kv_bytes(r.kv_bytes);
  out->set_created_unix_ms(r.created_unix_ms);
}

uint64_t ManifestBytes(const pb::Manifest& m) {
  uint64_t total = 0;
  for (const pb::ManifestChunk& c : m.chunks()) {
    for (const pb::ChunkEncoding& e : c.encodings()) total += e.bytes();
  }
  return total;
}

// Fills the KV part of `costs` from a manifest and the codec profile: levels 0..L-1 where L
// is the first level missing from any chunk or from the profile (the planner indexes levels
// by position). Returns false when the manifest does not describe `tokens` tokens.
bool KvCosts(const pb::Manifest& m, const pb::CodecInfo& codec, size_t tokens,
             policy::ContextCosts* costs) {
  if (m.chunks_size() == 0 || m.num_tokens() != tokens) return false;
  std::map<int, double> loss;
  for (const pb::CodecLevel& l : codec.levels()) loss[l.level()] = l.quality_loss();
  std::vector<int64_t> chunk_tokens;
  uint32_t expect_begin = 0;
  for (const pb::ManifestChunk& c : m.chunks()) {
    if (c.ref().token_begin() != expect_begin || c.ref().token_end() <= c.ref().token_begin()) {
      return false;
    }
    expect_begin = c.ref().token_end();
    chunk_tokens.push_back(c.ref().token_end() - c.ref().token_begin());
  }
  if (expect_begin != tokens) return false;
  std::vector<std::vector<uint64_t>> bytes;
  std::vector<double> losses;
  for (int level = 0; loss.count(level) != 0; ++level) {
    std::vector<uint64_t> row;
    for (const pb::ManifestChunk& c : m.chunks()) {
      for (const pb::ChunkEncoding& e : c.encodings()) {
        if (e.encoding() == pb::KV_ENCODING_CACHEGEN && e.level() == level) {
          row.push_back(e.bytes());
          break;
        }
      }
    }
    if (row.size() != chunk_tokens.size()) break;
    bytes.push_back(std::move(row));
    losses.push_back(loss[level]);
  }
  if (bytes.empty()) return false;
  costs->chunk_tokens = std::move(chunk_tokens);
  costs->chunk_bytes = std::move(bytes);
  costs->level_loss = std::move(losses);
  return true;
}

}  // namespace

QueryEngine::QueryEngine(Backends backends, ContextRegistry* registry, EngineOptions options)
    : backends_(backends), registry_(registry), options_(options) {}

QueryEngine::Clock::time_point QueryEngine::QueryDeadline(Clock::time_point client) const {
  const auto ours = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(options_.default_timeout_s));
  return std::min(client, ours);
}

std::string QueryEngine::LinkKey(size_t kv, size_t inf) const {
  return absl::StrCat("kvcache-", kv, ">inference-", inf);
}

policy::BandwidthEstimator QueryEngine::LinkEstimator(size_t kv, size_t inf) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = links_.find(LinkKey(kv, inf));
  if (it != links_.end()) return it->second;
  return policy::BandwidthEstimator(options_.bandwidth_alpha, options_.cold_start_bps);
}

double QueryEngine::BandwidthEstimate(size_t kv, size_t inf) const {
  return LinkEstimator(kv, inf).estimate_bps();
}

void QueryEngine::SeedBandwidth(size_t kv, size_t inf, double bps) {
  std::lock_guard<std::mutex> lock(mu_);
  links_.insert_or_assign(LinkKey(kv, inf),
                          policy::BandwidthEstimator(options_.bandwidth_alpha, bps));
}

grpc::Status QueryEngine::ModelInfoFor(InferenceSet::Lease& lease, Clock::time_point deadline,
                                       pb::ModelInfo* info) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = model_info_.find(lease.index());
    // With several replicas the info is refreshed every second: its active_requests feeds
    // the least-loaded choice (ReplicaSet::ReportLoad). One replica: every 30 s.
    const auto ttl =
        backends_.inference->size() > 1 ? std::chrono::seconds(1) : std::chrono::seconds(30);
    if (it != model_info_.end() && SteadyClock::now() - it->second.fetched < ttl) {
      *info = it->second.info;
      return grpc::Status::OK;
    }
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline, options_.metadata_timeout_s);
  grpc::Status s = lease.stub()->GetModelInfo(&ctx, pb::GetModelInfoRequest(), info);
  if (!s.ok()) return Wrap(s, absl::StrCat("inference ", lease.endpoint(), " GetModelInfo"));
  backends_.inference->ReportLoad(lease.index(), static_cast<int>(info->active_requests()));
  // Speeds are measured in the background at start-up: only cache once they are there.
  if (info->prefill_speed_size() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    model_info_[lease.index()] = {*info, SteadyClock::now()};
  }
  return s;
}

double QueryEngine::DecodeSpeed(size_t inference_index) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = decode_bps_.find(inference_index);
  return it != decode_bps_.end() ? it->second : options_.decode_bytes_per_second;
}

grpc::Status QueryEngine::Tokenize(InferenceSet::Lease& lease, const std::string& text,
                                   bool add_bos, Clock::time_point deadline,
                                   std::vector<int32_t>* out) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline, options_.metadata_timeout_s);
  pb::TokenizeRequest req;
  req.set_text(text);
  req.set_add_bos(add_bos);
  pb::TokenizeResponse resp;
  grpc::Status s = lease.stub()->Tokenize(&ctx, req, &resp);
  if (!s.ok()) return Wrap(s, absl::StrCat("inference ", lease.endpoint(), " Tokenize"));
  out->assign(resp.tokens().ids().begin(), resp.tokens().ids().end());
  return s;
}

grpc::Status QueryEngine::CodecInfoFor(KvCacheSet::Lease& lease, Clock::time_point deadline,
                                       pb::CodecInfo* info) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = codec_info_.find(lease.index());
    if (it != codec_info_.end()) {
      *info = it->second;
      return grpc::Status::OK;
    }
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline, options_.metadata_timeout_s);
  grpc::Status s = lease.stub()->GetCodecInfo(&ctx, pb::GetCodecInfoRequest(), info);
  if (!s.ok()) return Wrap(s, absl::StrCat("kvcache ", lease.endpoint(), " GetCodecInfo"));
  std::lock_guard<std::mutex> lock(mu_);
  codec_info_[lease.index()] = *info;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Register

grpc::Status QueryEngine::Register(const std::string& tenant,
                                   const pb::RegisterContextRequest& request,
                                   Clock::time_point deadline, const RegisterSink& sink) {
  if (request.text().empty()) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT, "RegisterContext: text is empty");
  }
  if (backends_.inference == nullptr || backends_.inference->empty()) {
    return Error(grpc::StatusCode::FAILED_PRECONDITION, "no inference replica configured");
  }
  const auto t0 = SteadyClock::now();
  ContextRecord rec;
  rec.context_id = ContextRegistry::NewContextId();
  rec.tenant = tenant;
  rec.name = request.name();
  rec.text = request.text();
  rec.chunk_tokens = options_.chunk_tokens;
  rec.created_unix_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
          .count();

  // Tokenize (another replica once if the first is unavailable).
  std::set<size_t> tried;
  InferenceSet::Lease lease = backends_.inference->Acquire();
  grpc::Status s = Tokenize(lease, rec.text, /*add_bos=*/true, deadline, &rec.tokens);
  if (!s.ok() && Retryable(s) && options_.retry_inference) {
    tried.insert(lease.index());
    if (InferenceSet::Lease other = backends_.inference->Acquire(tried)) {
      lease = std::move(other);
      s = Tokenize(lease, rec.text, true, deadline, &rec.tokens);
    }
  }
  if (!s.ok()) return s;
  if (rec.tokens.empty()) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT, "RegisterContext: text has no tokens");
  }
  const uint32_t n = static_cast<uint32_t>(rec.tokens.size());
  pb::ModelInfo info;
  if (ModelInfoFor(lease, deadline, &info).ok() && info.max_context_tokens() > 0 &&
      n >= info.max_context_tokens()) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("RegisterContext: the text is ", n, " tokens; the model (",
                              info.name(), ") takes at most ", info.max_context_tokens(),
                              " tokens including the question and the answer"));
  }
  const uint32_t chunks_total = (n + options_.chunk_tokens - 1) / options_.chunk_tokens;

  pb::RegisterProgress ev;
  ev.set_context_id(rec.context_id);
  ev.set_tokens(n);
  ev.set_chunks_total(chunks_total);
  ev.set_message("tokenized");
  if (!sink(ev)) return Error(grpc::StatusCode::CANCELLED, "client went away");

  if (request.precompute_compressed()) {
    const float rate = request.compress_rate() > 0 && request.compress_rate() <= 1
                           ? request.compress_rate()
                           : static_cast<float>(options_.compress_rate);
    std::string why;
    if (backends_.compressor == nullptr) {
      why = "no compressor configured";
    } else {
      grpc::ClientContext ctx;
      SetDeadline(&ctx, deadline);
      pb::CompressRequest creq;
      creq.add_contexts(rec.text);
      creq.set_rate(rate);
      creq.set_tenant(tenant);
      pb::CompressResponse cresp;
      grpc::Status cs = backends_.compressor->Compress(&ctx, creq, &cresp);
      if (!cs.ok()) {
        why = absl::StrCat("compressor: ", cs.error_message());
      } else {
        grpc::Status ts =
            Tokenize(lease, cresp.compressed_prompt(), true, deadline, &rec.compressed_tokens);
        if (ts.ok()) {
          rec.compressed_text = cresp.compressed_prompt();
          rec.compress_rate = rate;
        } else {
          why = ts.error_message();
        }
      }
    }
    ev.set_message(why.empty() ? absl::StrFormat("compressed to %d tokens (rate %.2f)",
                                                 rec.compressed_tokens.size(), rate)
                               : absl::StrCat("compression skipped: ", why));
    if (!sink(ev)) return Error(grpc::StatusCode::CANCELLED, "client went away");
  }
  if (absl::Status ps = registry_->Put(rec); !ps.ok()) {
    return Error(grpc::StatusCode::INTERNAL, ps.message());
  }

  // Ingest into kvcache. A failure leaves a context that is served as text.
  std::string ingest_error;
  if (backends_.kvcache == nullptr || backends_.kvcache->empty()) {
    ingest_error = "no kvcache configured";
  } else {
    KvCacheSet::Lease kv = backends_.kvcache->Acquire();
    grpc::ClientContext ctx;
    SetDeadline(&ctx, deadline);
    pb::IngestRequest ireq;
    ireq.set_context_id(rec.context_id);
    ireq.set_tenant(tenant);
    ireq.mutable_tokens()->mutable_ids()->Assign(rec.tokens.begin(), rec.tokens.end());
    ireq.set_chunk_tokens(options_.chunk_tokens);
    std::unique_ptr<grpc::ClientReaderInterface<pb::IngestProgress>> reader =
        kv.stub()->Ingest(&ctx, ireq);
    pb::IngestProgress p;
    bool committed = false;
    while (reader->Read(&p)) {
      ev.set_chunks_done(p.chunks_done());
      if (p.chunks_total() > 0) ev.set_chunks_total(p.chunks_total());
      ev.set_message("ingesting");
      if (p.committed()) {
        committed = true;
        rec.chunks = static_cast<uint32_t>(p.manifest().chunks_size());
        if (p.manifest().chunk_tokens() > 0) rec.chunk_tokens = p.manifest().chunk_tokens();
        rec.kv_bytes = ManifestBytes(p.manifest());
        rec.kv_ready = true;
        continue;  // the final event below says ready
      }
      if (!sink(ev)) {
        ctx.TryCancel();
        reader->Finish();
        return Error(grpc::StatusCode::CANCELLED, "client went away");
      }
    }
    grpc::Status is = reader->Finish();
    if (!is.ok()) {
      ingest_error = absl::StrCat("kvcache ", kv.endpoint(), " Ingest: ", is.error_message());
      rec.kv_ready = false;
    } else if (!committed) {
      ingest_error = absl::StrCat("kvcache ", kv.endpoint(), " ended Ingest without committing");
    }
  }
  if (rec.kv_ready) {
    if (absl::Status ps = registry_->Put(rec); !ps.ok()) {
      return Error(grpc::StatusCode::INTERNAL, ps.message());
    }
  }
  ev.set_ready(rec.kv_ready);
  ev.set_chunks_done(rec.kv_ready ? rec.chunks : ev.chunks_done());
  if (rec.kv_ready) ev.set_chunks_total(rec.chunks);
  ev.set_message(
      rec.kv_ready ? "ready" : absl::StrCat(ingest_error, " (the context can be queried as text)"));
  spdlog::info(
      "register context={} tenant={} tokens={} chunks={} kv_ready={} kv_bytes={} "
      "seconds={:.3f}{}",
      rec.context_id, tenant, n, rec.chunks, rec.kv_ready, rec.kv_bytes, SecondsSince(t0),
      ingest_error.empty() ? "" : " error=" + ingest_error);
  sink(ev);
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------
// Query

grpc::Status QueryEngine::Query(const std::string& tenant, const pb::QueryRequest& request,
                                Clock::time_point deadline, const QuerySink& sink) {
  const auto t0 = SteadyClock::now();
  const std::string request_id = ContextRegistry::NewContextId().substr(0, 16);
  if (request.question().empty()) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT, "Query: question is empty");
  }
  if (backends_.inference == nullptr || backends_.inference->empty()) {
    return Error(grpc::StatusCode::FAILED_PRECONDITION, "no inference replica configured");
  }

  // 1. The context.
  ContextRecord rec;
  bool registered = false;
  if (request.context_case() == pb::QueryRequest::kContextId) {
    std::optional<ContextRecord> r = registry_->Get(tenant, request.context_id());
    if (!r) {
      return Error(grpc::StatusCode::NOT_FOUND,
                   absl::StrCat("context ", request.context_id(), " not found"));
    }
    rec = *std::move(r);
    registered = true;
  } else if (request.context_case() == pb::QueryRequest::kContextText &&
             !request.context_text().empty()) {
    rec.text = request.context_text();
  } else {
    return Error(grpc::StatusCode::INVALID_ARGUMENT, "Query: give context_id or context_text");
  }

  // 2. An inference replica: model info and tokens (one retry elsewhere if unavailable).
  std::set<size_t> tried;
  InferenceSet::Lease lease;
  pb::ModelInfo info;
  std::vector<int32_t> question;
  grpc::Status last;
  for (int attempt = 0; attempt < (options_.retry_inference ? 2 : 1); ++attempt) {
    lease = backends_.inference->Acquire(tried);
    if (!lease) break;
    tried.insert(lease.index());
    last = ModelInfoFor(lease, deadline, &info);
    if (last.ok()) last = Tokenize(lease, request.question(), false, deadline, &question);
    if (last.ok() && !registered) last = Tokenize(lease, rec.text, true, deadline, &rec.tokens);
    if (last.ok() || !Retryable(last)) break;
  }
  if (!last.ok()) return last;
  if (!lease) return Error(grpc::StatusCode::UNAVAILABLE, "no inference replica available");
  const size_t n = rec.tokens.size();
  if (n == 0) return Error(grpc::StatusCode::INVALID_ARGUMENT, "Query: context has no tokens");
  const uint32_t max_new = request.max_tokens() > 0 ? request.max_tokens() : 64;
  if (info.max_context_tokens() > 0 && n + question.size() + max_new > info.max_context_tokens()) {
    return Error(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("Query: context (", n, ") + question (", question.size(), ") + max_tokens (",
                     max_new, ") tokens exceed the model's ", info.max_context_tokens(),
                     "; ask for fewer tokens or use a shorter context"));
  }

  // 3. Costs. KV only for a registered, ingested context whose manifest is readable now.
  policy::ContextCosts costs;
  costs.chunk_tokens = {static_cast<int64_t>(n)};
  costs.question_tokens = static_cast<int64_t>(question.size());
  std::string kv_missing;  // why KV is not an option (reported as a fallback)
  KvCacheSet::Lease kv;
  pb::Manifest manifest;
  const bool text_forced =
      request.force_form() == pb::FORM_TEXT || request.force_form() == pb::FORM_COMPRESSED_TEXT;
  if (!registered) {
    // inline text: KV does not exist; not a fallback
  } else if (!rec.kv_ready) {
    kv_missing = "the context's KV was never ingested";
  } else if (backends_.kvcache == nullptr || backends_.kvcache->empty()) {
    kv_missing = "no kvcache configured";
  } else if (!text_forced) {
    // Least-loaded replica first; the next one when it lacks the context or is down (with
    // per-replica stores the context lives where it was ingested).
    std::set<size_t> tried_kv;
    std::vector<std::string> errors;
    bool not_found = false;
    while (KvCacheSet::Lease candidate = backends_.kvcache->Acquire(tried_kv)) {
      tried_kv.insert(candidate.index());
      pb::CodecInfo codec;
      grpc::Status ks = CodecInfoFor(candidate, deadline, &codec);
      if (ks.ok()) {
        grpc::ClientContext ctx;
        SetDeadline(&ctx, deadline, options_.metadata_timeout_s);
        pb::GetManifestRequest mreq;
        mreq.set_context_id(rec.context_id);
        mreq.set_tenant(tenant);
        manifest.Clear();
        ks = candidate.stub()->GetManifest(&ctx, mreq, &manifest);
        if (!ks.ok()) {
          ks = Wrap(ks, absl::StrCat("kvcache ", candidate.endpoint(), " GetManifest"));
        }
      }
      if (ks.ok()) {
        if (KvCosts(manifest, codec, n, &costs)) {
          kv = std::move(candidate);
          break;
        }
        errors.push_back(absl::StrCat("kvcache ", candidate.endpoint(),
                                      ": manifest does not match the context's tokens or "
                                      "codec levels"));
        continue;
      }
      not_found = not_found || ks.error_code() == grpc::StatusCode::NOT_FOUND;
      errors.push_back(ks.error_message());
    }
    if (!kv) {
      kv_missing =
          not_found
              ? absl::StrCat("context KV missing in kvcache (", absl::StrJoin(errors, "; "), ")")
              : absl::StrCat("kvcache unreachable (", absl::StrJoin(errors, "; "), ")");
    }
  }
  const bool kv_available = !costs.chunk_bytes.empty();
  if (!kv_available) kv = KvCacheSet::Lease();

  if (!rec.compressed_tokens.empty()) {
    costs.compressed.push_back({rec.compress_rate,
                                static_cast<int64_t>(rec.compressed_tokens.size()),
                                options_.compress_loss, /*precomputed=*/true});
  } else if (backends_.compressor != nullptr) {
    costs.compressed.push_back({options_.compress_rate,
                                static_cast<int64_t>(std::ceil(n * options_.compress_rate)),
                                options_.compress_loss, false});
  }

  policy::CostModel model;
  {
    // ModelInfo's start-up speeds only until the replica has measured real prefills: they are
    // short prompts timed once, often while the node is busy ingesting the first contexts
    // (adaptive_bench: text predicted 1.2-1.7x too slow with them in the fit).
    std::vector<policy::PrefillSample> samples;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto& measured = prefill_samples_[lease.index()];
      samples.insert(samples.end(), measured.begin(), measured.end());
      const auto& shorter = short_prefill_samples_[lease.index()];
      samples.insert(samples.end(), shorter.begin(), shorter.end());
    }
    const auto long_prefills = std::count_if(
        samples.begin(), samples.end(),
        [](const policy::PrefillSample& p) { return p.n1 - p.n0 >= kMinLongPrefillTokens; });
    if (long_prefills < kMinLongPrefills) {
      for (const pb::PrefillSpeed& p : info.prefill_speed()) {
        samples.push_back(policy::PrefillModel::FromSpeed(p.tokens(), p.tokens_per_second()));
      }
    }
    absl::StatusOr<policy::PrefillModel> fit = policy::PrefillModel::Fit(samples);
    if (fit.ok()) model.prefill = *fit;
    if (info.decode_seconds_per_token() > 0) {
      model.decode.seconds_per_token = info.decode_seconds_per_token();
    }
    model.decode.bytes_per_second = {DecodeSpeed(lease.index())};
  }
  const size_t kv_index = kv ? kv.index() : 0;
  policy::BandwidthEstimator estimator = LinkEstimator(kv_index, lease.index());

  policy::PlanRequest preq;
  preq.bandwidth_bps = estimator.estimate_bps();
  preq.text_bandwidth_bps = options_.text_bandwidth_bps;
  preq.slo_s = request.slo_ttft_seconds();
  preq.max_quality_loss = request.max_quality_loss();
  preq.consider_hybrid = options_.hybrid;
  if (request.objective() == pb::OBJECTIVE_FASTEST_WITHIN_FLOOR) {
    preq.objective = policy::Objective::kFastestWithinFloor;
  }
  std::string forced_note;
  switch (request.force_form()) {
    case pb::FORM_TEXT:
      preq.force_form = policy::Form::kText;
      break;
    case pb::FORM_COMPRESSED_TEXT:
      if (costs.compressed.empty()) {
        return Error(grpc::StatusCode::FAILED_PRECONDITION,
                     "forced compressed text, but no compressor is configured and the context "
                     "has no precomputed compressed version");
      }
      preq.force_form = policy::Form::kCompressedText;
      break;
    case pb::FORM_KV:
      if (kv_available) {
        preq.force_form = policy::Form::kKv;
        preq.force_level = request.force_level();
      } else {
        preq.force_form = policy::Form::kText;
        forced_note = absl::StrCat(
            "forced KV unavailable: ", kv_missing.empty() ? "inline text has no KV" : kv_missing,
            "; serving text. ");
      }
      break;
    default:
      break;
  }
  absl::StatusOr<policy::Plan> plan = policy::ChoosePlan(model, costs, preq);
  if (!plan.ok()) return Error(grpc::StatusCode::INVALID_ARGUMENT, plan.status().message());
  const policy::OptionEstimate& chosen = plan->chosen;
  const double planned_at_s = SecondsSince(t0);  // chosen.ttft_s counts from here

  // 4. The plan event.
  pb::QueryEvent ev;
  pb::Plan* p = ev.mutable_plan();
  p->set_form(ToProto(chosen.form));
  p->set_predicted_ttft_seconds(chosen.ttft_s);
  p->set_predicted_quality_loss(chosen.loss);
  p->set_bandwidth_estimate_bytes_per_second(preq.bandwidth_bps);
  std::string reason = plan->reason;
  if (!kv_missing.empty() && !text_forced && forced_note.empty()) {
    reason = absl::StrCat(kv_missing, "; planned without KV: ", reason);
  }
  p->set_reason(forced_note + reason);
  if (chosen.form == policy::Form::kCompressedText) p->set_compress_rate(chosen.rate);
  for (const policy::OptionEstimate& o : plan->options) {
    pb::OptionEstimate* po = p->add_options();
    po->set_form(ToProto(o.form));
    po->set_level(o.level);
    po->set_compress_rate(static_cast<float>(o.rate));
    po->set_predicted_ttft_seconds(o.ttft_s);
    po->set_quality_loss(o.loss);
    po->set_bytes(o.bytes);
  }
  if (chosen.form == policy::Form::kKv) {
    for (size_t i = 0; i < plan->chunk_levels.size(); ++i) {
      pb::ChunkPlan* c = p->add_chunks();
      c->set_chunk_index(static_cast<uint32_t>(i));
      // A hybrid's text head: prefilled on the inference node while the KV tail streams.
      const bool text = plan->chunk_levels[i] == policy::kTextLevel;
      c->set_form(text ? pb::FORM_TEXT : pb::FORM_KV);
      c->set_level(plan->chunk_levels[i]);
    }
  }
  const pb::Plan plan_sent = *p;
  if (!sink(ev)) return Error(grpc::StatusCode::CANCELLED, "client went away");
  obs::ControllerMetrics& metrics = obs::ControllerMetrics::Get();
  metrics.CountDecision(ToObs(chosen.form), chosen.level, /*replan=*/false);

  // 5. The GenerateStart.
  bool fell_back = !kv_missing.empty() && !text_forced && registered;
  std::string fallback_reason = fell_back ? kv_missing : "";
  double compress_seconds = 0;
  pb::GenerateStart start;
  start.mutable_question()->mutable_ids()->Assign(question.begin(), question.end());
  pb::SamplingParams* sp = start.mutable_sampling();
  sp->set_max_new_tokens(max_new);
  sp->set_temperature(request.temperature());
  sp->set_top_p(request.top_p());
  sp->set_seed(request.seed());
  sp->set_stop_at_eos(true);
  start.set_request_id(request_id);
  pb::Form delivered = ToProto(chosen.form);
  uint64_t text_bytes = 0;
  auto add_text_segment = [&](pb::Form form, const std::vector<int32_t>& ids) {
    pb::ContextSegment* seg = start.add_segments();
    seg->set_token_begin(0);
    seg->set_token_end(static_cast<uint32_t>(ids.size()));
    seg->set_form(form);
    seg->set_level(-1);
    seg->mutable_tokens()->mutable_ids()->Assign(ids.begin(), ids.end());
    text_bytes = 4 * ids.size();
  };
  if (chosen.form == policy::Form::kCompressedText) {
    std::vector<int32_t> ids = rec.compressed_tokens;
    std::string why;
    if (ids.empty()) {
      const auto c0 = SteadyClock::now();
      grpc::ClientContext ctx;
      SetDeadline(&ctx, deadline);
      pb::CompressRequest creq;
      creq.add_contexts(rec.text);
      creq.set_rate(static_cast<float>(chosen.rate));
      creq.set_tenant(tenant);
      pb::CompressResponse cresp;
      grpc::Status cs = backends_.compressor->Compress(&ctx, creq, &cresp);
      if (cs.ok()) cs = Tokenize(lease, cresp.compressed_prompt(), true, deadline, &ids);
      compress_seconds = SecondsSince(c0);
      if (!cs.ok()) why = absl::StrCat("compressor failed (", cs.error_message(), ")");
    }
    if (why.empty() && !ids.empty()) {
      add_text_segment(pb::FORM_COMPRESSED_TEXT, ids);
    } else {
      fell_back = true;
      fallback_reason = why.empty() ? "compressed text is empty" : why;
      delivered = pb::FORM_TEXT;
      add_text_segment(pb::FORM_TEXT, rec.tokens);
    }
  } else if (chosen.form == policy::Form::kKv) {
    // Re-planning needs measured chunks to act on; when the whole transfer is predicted
    // shorter than options_.min_adapt_transfer_s it cannot help and only costs (a manifest read
    // and a thread on the receiver: 2-5 ms of 20-30 ms TTFTs in adaptive_bench at >= 100
    // Mbit/s). A query that asks for it explicitly (adapt_per_chunk) always gets it.
    const bool adapt = request.adapt_per_chunk() ||
                       (options_.adapt && chosen.transfer_s >= options_.min_adapt_transfer_s);
    for (int i = 0; i < manifest.chunks_size(); ++i) {
      const pb::ChunkRef& ref = manifest.chunks(i).ref();
      pb::ContextSegment* seg = start.add_segments();
      seg->set_token_begin(ref.token_begin());
      seg->set_token_end(ref.token_end());
      const bool text = plan->chunk_levels[i] == policy::kTextLevel;  // hybrid head
      seg->set_form(text ? pb::FORM_TEXT : pb::FORM_KV);
      seg->set_level(plan->chunk_levels[i]);
      seg->mutable_tokens()->mutable_ids()->Assign(rec.tokens.begin() + ref.token_begin(),
                                                   rec.tokens.begin() + ref.token_end());
    }
    pb::KvSource* src = start.mutable_kv_source();
    src->set_kvcache_address(kv.endpoint());
    src->set_context_id(rec.context_id);
    src->set_tenant(tenant);
    *src->mutable_plan() = plan_sent.chunks();
    // A forced level is not re-planned: the caller asked for exactly that level.
    src->set_adapt(adapt && !(request.force_form() == pb::FORM_KV && request.force_level() >= 0));
    pb::AdaptationParams* ap = src->mutable_adaptation();
    // The receiver's budget: the query's SLO, or with FASTEST_WITHIN_FLOOR the chosen
    // option's predicted TTFT (keep its pace; upgrade quality only where that still fits).
    // Without keeping pace, fastest means as soon as possible (EngineOptions).
    double receiver_slo = preq.slo_s;
    if (preq.objective == policy::Objective::kFastestWithinFloor) {
      receiver_slo = options_.fastest_keeps_pace ? planned_at_s + chosen.ttft_s : 0;
    }
    if (receiver_slo > 0) {
      ap->set_slo_ttft_seconds(std::max(receiver_slo - SecondsSince(t0), 1e-3));
    } else if (preq.objective == policy::Objective::kFastestWithinFloor) {
      ap->set_slo_ttft_seconds(1e-3);  // as soon as possible: the replanner's best effort
    }
    ap->set_max_quality_loss(preq.max_quality_loss);
    ap->set_bandwidth_estimate_bytes_per_second(preq.bandwidth_bps);
    for (double l : costs.level_loss) ap->add_level_quality_loss(l);
    ap->set_prefill_a(model.prefill.coefficients().a);
    ap->set_prefill_b(model.prefill.coefficients().b);
    ap->set_prefill_c(model.prefill.coefficients().c);
    ap->set_decode_bytes_per_second(model.decode.bytes_per_second.front());
    src->set_fetch_deadline_seconds(std::max(SecondsLeft(deadline), 1e-3));
  } else {
    add_text_segment(pb::FORM_TEXT, rec.tokens);
  }

  // 6. Generate: forward decisions and tokens; one retry on another replica if the first is
  // unavailable before any token went out.
  double ttft = -1;
  std::string answer;
  uint32_t tokens_out = 0;
  pb::GenerateDone done;
  bool have_done = false;
  std::string endpoint;
  size_t inference_index = lease.index();
  // Link throughput while chunks were on the wire, from the receiver's per-chunk
  // measurements (ChunkDecision i carries chunk i-1's bytes/s): bytes and seconds summed.
  // GenerateDone.fetch_seconds is only the time the model waited for KV (transfer overlaps
  // decode), so bytes / fetch_seconds overstates the link; it is the fallback.
  std::map<uint32_t, int> decided_level;  // chunk -> level (-1 text)
  double wire_bytes = 0, wire_seconds = 0;
  grpc::Status gs;
  for (int attempt = 0;; ++attempt) {
    endpoint = lease.endpoint();
    inference_index = lease.index();
    grpc::ClientContext ctx;
    SetDeadline(&ctx, deadline);
    auto stream = lease.stub()->Generate(&ctx);
    pb::GenerateRequest greq;
    *greq.mutable_start() = start;
    stream->Write(greq);
    stream->WritesDone();
    pb::GenerateResponse resp;
    bool cancelled = false;
    while (stream->Read(&resp)) {
      pb::QueryEvent out;
      if (resp.has_token()) {
        if (ttft < 0) ttft = SecondsSince(t0);
        answer += resp.token().text();
        ++tokens_out;
        *out.mutable_token() = resp.token();
      } else if (resp.has_decision()) {
        const pb::ChunkDecision& d = resp.decision();
        metrics.CountDecision(ToObs(d.form()), d.level(), true);
        decided_level[d.chunk_index()] = d.form() == pb::FORM_KV ? d.level() : -1;
        if (d.chunk_index() > 0 && d.measured_bytes_per_second() > 0) {
          auto prev = decided_level.find(d.chunk_index() - 1);
          if (prev != decided_level.end() && prev->second >= 0 &&
              static_cast<size_t>(prev->second) < costs.chunk_bytes.size() &&
              d.chunk_index() - 1 < costs.chunk_bytes[prev->second].size()) {
            const double b =
                static_cast<double>(costs.chunk_bytes[prev->second][d.chunk_index() - 1]);
            wire_bytes += b;
            wire_seconds += b / d.measured_bytes_per_second();
          }
        }
        *out.mutable_decision() = resp.decision();
      } else if (resp.has_done()) {
        done = resp.done();
        have_done = true;
        continue;
      } else {
        continue;
      }
      if (!sink(out)) {
        cancelled = true;
        ctx.TryCancel();
        break;
      }
    }
    gs = stream->Finish();
    if (cancelled) return Error(grpc::StatusCode::CANCELLED, "client went away");
    if (gs.ok() && !have_done) {
      gs = Error(grpc::StatusCode::INTERNAL, "inference ended Generate without GenerateDone");
    }
    if (gs.ok()) break;
    gs = Wrap(gs, absl::StrCat("inference ", endpoint, " Generate"));
    if (attempt > 0 || !options_.retry_inference || !Retryable(gs) || tokens_out > 0) return gs;
    InferenceSet::Lease other = backends_.inference->Acquire(tried);
    if (!other) {
      return Error(gs.error_code(),
                   absl::StrCat(gs.error_message(), " (no other inference replica to retry on)"));
    }
    spdlog::warn("query {}: {}; retrying on {}", request_id, gs.error_message(), other.endpoint());
    tried.insert(other.index());
    lease = std::move(other);
    have_done = false;
  }
  const double total_s = SecondsSince(t0);
  if (ttft < 0) ttft = total_s;  // no token generated (max_tokens reached 0 / immediate EOS)

  // 7. Measurements back into the cost model.
  // Prefill: the node prefilled positions [kv_tokens, kv_tokens + prefilled + question) (a
  // clean sample only without a mid-stream fallback, which prefills in pieces).
  // For KV that is the question alone, on top of the KV prefix.
  // A hybrid prefilled [0, head) and [n, n + question): two ranges, no single sample.
  if (!done.fell_back() && done.timings().prefill_seconds() > 0 && chosen.text_chunks == 0) {
    const double n0 = done.kv_tokens();
    const double n1 = n0 + done.prefilled_tokens() + static_cast<double>(question.size());
    // Long prefills and question-only ones (KV) in separate windows, so a run of KV queries
    // does not push every long prefill out of the fit.
    std::lock_guard<std::mutex> lock(mu_);
    auto& samples = n1 - n0 >= kMinLongPrefillTokens ? prefill_samples_[inference_index]
                                                     : short_prefill_samples_[inference_index];
    samples.push_back({n0, n1, done.timings().prefill_seconds()});
    if (samples.size() > kMaxPrefillSamples / 2) samples.pop_front();
  }
  uint64_t kv_bytes = 0;
  for (const pb::ByteCount& b : done.bytes()) {
    if (b.form() == pb::FORM_KV || b.form() == pb::FORM_UNSPECIFIED) kv_bytes += b.bytes();
  }
  const double fetch_s = done.timings().fetch_seconds();
  const bool wire = wire_bytes > 0 && wire_seconds > 0;
  // fetch_seconds is the time the worker waited for KV: behind a hybrid's text head (the tail
  // arrives while the head is prefilled) it is ~0 and says nothing about the link.
  const bool waited = fetch_s > 0 && chosen.text_chunks == 0;
  if (kv && kv_bytes > 0 && (wire || waited)) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string link = LinkKey(kv.index(), inference_index);
    auto it = links_.find(link);
    if (it == links_.end()) {
      it = links_
               .emplace(link, policy::BandwidthEstimator(options_.bandwidth_alpha,
                                                         options_.cold_start_bps))
               .first;
    }
    if (wire) {
      it->second.AddSample(wire_bytes, wire_seconds);
    } else {
      it->second.AddSample(static_cast<double>(kv_bytes), fetch_s);
    }
    metrics.SetBandwidthEstimate(link, it->second.estimate_bps());
  }
  // KV decode throughput of this replica, measured (GenerateDone.decode_seconds covers the
  // entropy decode, dequantisation and cache load of every KV chunk): EWMA, alpha 0.5.
  if (kv_bytes > 0 && done.timings().decode_seconds() > 0) {
    const double bps = static_cast<double>(kv_bytes) / done.timings().decode_seconds();
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = decode_bps_.emplace(inference_index, bps);
    if (!inserted) it->second = 0.5 * bps + 0.5 * it->second;
  }
  if (done.fell_back()) {
    fell_back = true;
    fallback_reason = fallback_reason.empty()
                          ? done.fallback_reason()
                          : absl::StrCat(fallback_reason, "; ", done.fallback_reason());
  }

  // 8. The result.
  pb::QueryEvent rev;
  pb::QueryResult* r = rev.mutable_result();
  *r->mutable_timings() = done.timings();
  r->mutable_timings()->set_ttft_seconds(ttft);
  r->mutable_timings()->set_total_seconds(total_s);
  r->mutable_timings()->set_compress_seconds(compress_seconds + done.timings().compress_seconds());
  *r->mutable_bytes() = done.bytes();
  bool counted = false;  // newer inference nodes count the token ids they received too
  for (const pb::ByteCount& b : done.bytes()) counted = counted || b.form() == delivered;
  if (text_bytes > 0 && !counted) {
    pb::ByteCount* b = r->add_bytes();
    b->set_form(delivered);
    b->set_level(-1);
    b->set_bytes(text_bytes);
    b->set_chunks(1);
  }
  if (text_bytes > 0) obs::AddContextBytes(ToObs(delivered), -1, static_cast<double>(text_bytes));
  const bool slo_met = preq.slo_s <= 0 || ttft <= preq.slo_s;
  r->set_slo_met(slo_met);
  r->set_fell_back(fell_back);
  r->set_fallback_reason(fallback_reason);
  r->set_generated_tokens(tokens_out);
  r->set_answer(answer);
  r->set_inference_endpoint(endpoint);

  const obs::Form of = ToObs(chosen.form);
  metrics.ObserveTtft(of, ttft);
  metrics.ObservePredictedTtft(of, chosen.ttft_s, ttft);
  metrics.ObserveStage(obs::Stage::kFetch, of, done.timings().fetch_seconds());
  metrics.ObserveStage(obs::Stage::kDecode, of, done.timings().decode_seconds());
  metrics.ObserveStage(obs::Stage::kPrefill, of, done.timings().prefill_seconds());
  if (r->timings().compress_seconds() > 0) {
    metrics.ObserveStage(obs::Stage::kCompress, of, r->timings().compress_seconds());
  }
  metrics.CountQuery(of, !slo_met);
  spdlog::info(
      "query {} tenant={} context={} form={} level={} predicted_ttft={:.3f} ttft={:.3f} "
      "total={:.3f} fetch={:.3f} decode={:.3f} prefill={:.3f} compress={:.3f} kv_bytes={} "
      "bw_est={:.0f} slo={:.3f} slo_met={} fell_back={} tokens={} endpoint={} "
      "prefill_fit=a:{:.3g},b:{:.3g},c:{:.3g}",
      request_id, tenant, registered ? rec.context_id : "inline", policy::FormName(chosen.form),
      chosen.level, chosen.ttft_s, ttft, total_s, done.timings().fetch_seconds(),
      done.timings().decode_seconds(), done.timings().prefill_seconds(),
      r->timings().compress_seconds(), kv_bytes, preq.bandwidth_bps, preq.slo_s, slo_met, fell_back,
      tokens_out, endpoint, model.prefill.coefficients().a, model.prefill.coefficients().b,
      model.prefill.coefficients().c);
  sink(rev);
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------
// Get / List / Delete

grpc::Status QueryEngine::GetContext(const std::string& tenant, const pb::GetContextRequest& req,
                                     pb::ContextInfo* out) {
  std::optional<ContextRecord> r = registry_->Get(tenant, req.context_id());
  if (!r) {
    return Error(grpc::StatusCode::NOT_FOUND,
                 absl::StrCat("context ", req.context_id(), " not found"));
  }
  FillInfo(*r, out);
  return grpc::Status::OK;
}

grpc::Status QueryEngine::ListContexts(const std::string& tenant,
                                       const pb::ListContextsRequest& req,
                                       pb::ListContextsResponse* out) {
  const size_t page = req.page_size() == 0 ? 100 : std::min<size_t>(req.page_size(), 1000);
  // Ask one more than a page to know whether another page follows.
  std::vector<ContextRecord> recs = registry_->List(tenant, req.page_token(), page + 1);
  const bool more = recs.size() > page;
  if (more) recs.resize(page);
  for (const ContextRecord& r : recs) FillInfo(r, out->add_contexts());
  if (more) out->set_next_page_token(recs.back().context_id);
  return grpc::Status::OK;
}

grpc::Status QueryEngine::DeleteContext(const std::string& tenant,
                                        const pb::ControllerDeleteContextRequest& req,
                                        Clock::time_point deadline,
                                        pb::ControllerDeleteContextResponse* out) {
  std::optional<ContextRecord> r = registry_->Get(tenant, req.context_id());
  if (!r) {
    return Error(grpc::StatusCode::NOT_FOUND,
                 absl::StrCat("context ", req.context_id(), " not found"));
  }
  // KV first: if kvcache refuses, the registry still knows the context, so a retry works.
  if (r->kv_ready && backends_.kvcache != nullptr) {
    // Every replica: with per-replica stores any of them may hold it (NOT_FOUND is fine).
    std::set<size_t> done;
    while (KvCacheSet::Lease kv = backends_.kvcache->Acquire(done)) {
      done.insert(kv.index());
      grpc::ClientContext ctx;
      SetDeadline(&ctx, deadline, options_.metadata_timeout_s);
      pb::DeleteContextRequest dreq;
      dreq.set_context_id(r->context_id);
      dreq.set_tenant(tenant);
      pb::DeleteContextResponse dresp;
      grpc::Status s = kv.stub()->DeleteContext(&ctx, dreq, &dresp);
      if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND) {
        return Wrap(s, absl::StrCat("kvcache ", kv.endpoint(),
                                    " DeleteContext (the context is kept; retry)"));
      }
    }
  }
  if (absl::Status s = registry_->Delete(tenant, req.context_id()); !s.ok()) {
    return Error(static_cast<grpc::StatusCode>(s.code()), s.message());
  }
  out->set_deleted(true);
  return grpc::Status::OK;
}

}  // namespace ctx::controller
