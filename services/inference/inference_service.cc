#include "services/inference/inference_service.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model/generate.h"
#include "common/obs/metrics.h"
#include "common/obs/service_metrics.h"
#include "common/rpc/kv_parts.h"
#include "common/rpc/status.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "services/inference/inbox.h"
#include "services/inference/kv_import.h"
#include "services/inference/kv_source_fetcher.h"
#include "spdlog/spdlog.h"

namespace ctx::inference {

namespace v1 = ctxstream::v1;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double SecondsSince(Clock::time_point t0) { return Seconds(Clock::now() - t0); }

constexpr int kDefaultChunkTokens = 256;
constexpr int kDefaultMaxNewTokens = 64;
constexpr int kPrefillBlockTokens = 256;                // cancellation is checked between blocks
constexpr uint64_t kMaxChunkBytes = uint64_t{1} << 30;  // bound on one received chunk

absl::StatusOr<tensor::DType> ExportDType(v1::DType d) {
  switch (d) {
    case v1::DTYPE_UNSPECIFIED:
    case v1::DTYPE_F16:
      return tensor::DType::kF16;
    case v1::DTYPE_F32:
      return tensor::DType::kF32;
    case v1::DTYPE_BF16:
      return tensor::DType::kBF16;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown export dtype ", static_cast<int>(d)));
  }
}

// Inbound flow control of caller-supplied KV parts (Generate), docs: README.md in this folder.
class InboundKvMetrics {
 public:
  static InboundKvMetrics& Get() {
    static InboundKvMetrics* m = new InboundKvMetrics();
    return *m;
  }
  void Add(double bytes) { buffered_.Increment(bytes); }
  void Remove(double bytes) { buffered_.Decrement(bytes); }
  void ObservePeak(double bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (bytes > peak_.Value()) peak_.Set(bytes);
  }
  void Paused() { pauses_.Increment(); }

 private:
  InboundKvMetrics()
      : buffered_(prometheus::BuildGauge()
                      .Name("ctxstream_inference_kv_inbound_buffered_bytes")
                      .Help("Caller KV part bytes received by Generate calls and not yet "
                            "processed (all calls)")
                      .Register(obs::Metrics())
                      .Add({})),
        peak_(prometheus::BuildGauge()
                  .Name("ctxstream_inference_kv_inbound_buffered_peak_bytes")
                  .Help("Most caller KV part bytes one Generate call has held unprocessed "
                        "since start (bounded by --max_inbound_kv_bytes + one message)")
                  .Register(obs::Metrics())
                  .Add({})),
        pauses_(prometheus::BuildCounter()
                    .Name("ctxstream_inference_kv_inbound_read_pauses_total")
                    .Help("Times a Generate call stopped reading its stream because its "
                          "unprocessed KV parts reached --max_inbound_kv_bytes")
                    .Register(obs::Metrics())
                    .Add({})) {}
  std::mutex mu_;
  prometheus::Gauge& buffered_;
  prometheus::Gauge& peak_;
  prometheus::Counter& pauses_;
};

obs::Form MetricForm(v1::Form f) {
  if (f == v1::FORM_KV) return obs::Form::kKv;
  if (f == v1::FORM_COMPRESSED_TEXT) return obs::Form::kCompressedText;
  return obs::Form::kText;
}

// Outgoing side shared by the streaming reactors: a queue written one message at a time
// (gRPC allows one outstanding write), Close() finishing once the queue drained, and a
// reference count so that the reactor outlives both gRPC (OnDone) and its worker task.
template <class Base, class Resp>
class Outbox : public Base {
 public:
  // Thread-safe. False once the call is finishing or broken (the message is dropped).
  bool Send(Resp msg) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (closing_ || broken_) return false;
    out_.push_back(std::move(msg));
    if (!writing_) StartNext();
    return true;
  }
  // Thread-safe; the first call wins.
  void Close(const grpc::Status& status) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (closing_) return;
    closing_ = true;
    status_ = status;
    if (!writing_) FinishNow();
  }
  bool cancelled() const { return cancelled_.load(); }
  bool closing() {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return closing_;
  }

  void Ref() { refs_.fetch_add(1); }
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    writing_ = false;
    out_.pop_front();
    if (!ok) {
      broken_ = true;
      cancelled_ = true;
      out_.clear();
    }
    if (!out_.empty()) {
      StartNext();
    } else if (closing_) {
      FinishNow();
    }
  }
  void OnCancel() override {
    cancelled_ = true;
    OnCancelled();
  }
  void OnDone() override { Unref(); }

 protected:
  virtual void OnCancelled() {}
  std::atomic<bool> cancelled_{false};

 private:
  void StartNext() {
    writing_ = true;
    this->StartWrite(&out_.front());
  }
  void FinishNow() {
    if (finished_) return;
    finished_ = true;
    this->Finish(status_);
  }

  std::recursive_mutex mu_;  // gRPC may run OnWriteDone inline from StartWrite
  std::deque<Resp> out_;     // front() is being written while writing_
  bool writing_ = false;
  bool closing_ = false;
  bool finished_ = false;
  bool broken_ = false;
  grpc::Status status_;
  std::atomic<int> refs_{1};  // gRPC's reference, dropped in OnDone
};

}  // namespace

struct InferenceService::Shared {
  explicit Shared(codec::KvCodec c) : codec(std::move(c)) {}
  std::unique_ptr<model::Model> model;
  std::unique_ptr<TokenizerApi> tokenizer;
  codec::KvCodec codec;
  std::unique_ptr<model::Layer0KvComputer> layer0;
  ServiceOptions options;
  std::unique_ptr<rpc::WorkerPool> pool;
  std::atomic<int> active{0};
  std::atomic<bool> stopping{false};
  std::mutex perf_mu;
  std::optional<model::PerfReport> perf;

  KvImporter importer() const { return KvImporter{*model, codec, *layer0}; }
};

InferenceService::InferenceService(std::unique_ptr<model::Model> model,
                                   std::unique_ptr<TokenizerApi> tokenizer, codec::KvCodec codec,
                                   ServiceOptions options)
    : shared_(std::make_shared<Shared>(std::move(codec))) {
  shared_->model = std::move(model);
  shared_->tokenizer = std::move(tokenizer);
  shared_->options = options;
  shared_->layer0 = std::make_unique<model::Layer0KvComputer>(*shared_->model);
  shared_->pool = std::make_unique<rpc::WorkerPool>(std::max(1, options.compute_threads),
                                                    std::max(1, options.max_queue));
}

InferenceService::~InferenceService() {
  shared_->stopping = true;
  shared_->pool.reset();  // finishes queued tasks (they see `stopping` and end fast)
}

void InferenceService::CancelAll() { shared_->stopping = true; }

const model::Model& InferenceService::model() const { return *shared_->model; }

void InferenceService::SetPerf(const model::PerfReport& perf) {
  std::lock_guard<std::mutex> lock(shared_->perf_mu);
  shared_->perf = perf;
}

// ------------------------------------------------------------------ unary handlers

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(grpc::CallbackServerContext* ctx,
                                                         const v1::GetModelInfoRequest*,
                                                         v1::ModelInfo* r) {
  const model::Model& m = *shared_->model;
  const model::LlamaConfig& c = m.config();
  std::string name = m.dir();
  while (!name.empty() && name.back() == '/') name.pop_back();
  if (const size_t slash = name.rfind('/'); slash != std::string::npos)
    name = name.substr(slash + 1);
  r->set_name(name);
  r->set_fingerprint(std::string(reinterpret_cast<const char*>(m.fingerprint().bytes.data()),
                                 m.fingerprint().bytes.size()));
  r->mutable_geometry()->set_num_layers(c.num_layers);
  r->mutable_geometry()->set_num_kv_heads(c.num_kv_heads);
  r->mutable_geometry()->set_head_dim(c.head_dim);
  r->mutable_geometry()->set_dtype(v1::DTYPE_F16);  // default export dtype (Prefill)
  r->set_vocab_size(c.vocab_size);
  r->set_max_context_tokens(c.max_position_embeddings);
  r->set_bos_id(shared_->tokenizer->bos_id());
  r->set_eos_id(shared_->tokenizer->eos_id());
  {
    std::lock_guard<std::mutex> lock(shared_->perf_mu);
    if (shared_->perf) {
      for (const model::PrefillRate& p : shared_->perf->prefill) {
        auto* s = r->add_prefill_speed();
        s->set_tokens(p.tokens);
        s->set_tokens_per_second(p.tokens_per_second);
      }
      r->set_decode_seconds_per_token(shared_->perf->decode_seconds_per_token);
    }
  }
  r->set_active_requests(static_cast<uint32_t>(std::max(0, shared_->active.load())));
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

// Tokenize/Detokenize are microseconds of work: answered inline.
grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* ctx,
                                                     const v1::TokenizeRequest* req,
                                                     v1::TokenizeResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::vector<int32_t> ids;
  std::string error;
  if (!shared_->tokenizer->Encode(req->text(), req->add_bos(), &ids, &error)) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error));
    return reactor;
  }
  resp->mutable_tokens()->mutable_ids()->Assign(ids.begin(), ids.end());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(grpc::CallbackServerContext* ctx,
                                                       const v1::DetokenizeRequest* req,
                                                       v1::DetokenizeResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  const auto& ids = req->tokens().ids();
  std::string text, error;
  if (!shared_->tokenizer->Decode(std::vector<int32_t>(ids.begin(), ids.end()), &text, &error)) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error));
    return reactor;
  }
  resp->set_text(text);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

// ------------------------------------------------------------------ Prefill

namespace {

class PrefillReactor final
    : public Outbox<grpc::ServerWriteReactor<v1::PrefillResponse>, v1::PrefillResponse> {
 public:
  PrefillReactor(std::shared_ptr<InferenceService::Shared> shared, grpc::CallbackServerContext* ctx,
                 const v1::PrefillRequest* req)
      : shared_(std::move(shared)), ctx_(ctx), req_(*req) {
    Ref();
    absl::Status s = shared_->pool->Submit([this] {
      Close(Run());
      Unref();
    });
    if (!s.ok()) {
      Unref();
      Close(rpc::ToGrpcStatus(s));
    }
  }

 private:
  bool Stop() const { return cancelled() || shared_->stopping; }

  grpc::Status Run() {
    shared_->active++;
    grpc::Status s = RunImpl();
    shared_->active--;
    return s;
  }

  grpc::Status RunImpl() {
    if (Stop()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    const model::Model& m = *shared_->model;
    const auto& ids = req_.tokens().ids();
    std::span<const int32_t> tokens(ids.data(), ids.size());
    const int n = static_cast<int>(tokens.size());
    if (n == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Prefill: no tokens");
    if (absl::Status s = m.CheckTokens(tokens); !s.ok()) return rpc::ToGrpcStatus(s);
    if (n > m.config().max_position_embeddings) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("Prefill: ", n, " tokens exceed the model's context of ",
                                       m.config().max_position_embeddings));
    }
    absl::StatusOr<tensor::DType> dtype = ExportDType(req_.export_dtype());
    if (!dtype.ok()) return rpc::ToGrpcStatus(dtype.status());
    const int chunk_tokens =
        req_.chunk_tokens() > 0 ? static_cast<int>(req_.chunk_tokens()) : kDefaultChunkTokens;
    const int prefix = static_cast<int>(req_.prefix_tokens());
    if (prefix > n) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("Prefill: prefix_tokens ", prefix, " > tokens ", n));
    }
    if (absl::StatusOr<std::optional<tensor::DType>> pd = RawKvDType(req_.prefix_dtype());
        !pd.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("Prefill: prefix_dtype: ", pd.status().message()));
    }
    const v1::DType export_dtype =
        req_.export_dtype() == v1::DTYPE_UNSPECIFIED ? v1::DTYPE_F16 : req_.export_dtype();
    model::KvCache cache = m.NewKvCache(n);
    // The prefix arrives as KV chunk parts that must tile [0, prefix).
    rpc::KvPartAssembler assembler(kMaxChunkBytes);
    const KvImporter importer = shared_->importer();
    for (const v1::KvChunkPart& part : req_.prefix()) {
      absl::StatusOr<std::optional<rpc::KvChunk>> chunk = assembler.Add(part);
      if (!chunk.ok()) return rpc::ToGrpcStatus(chunk.status());
      if (!chunk->has_value()) continue;
      const int a = cache.length();
      const int b = static_cast<int>((*chunk)->ref.token_end());
      if (b <= a || b > prefix) {
        return grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("Prefill: prefix chunk ends at ", b, ", expected a range after ", a,
                         " within prefix_tokens ", prefix));
      }
      if (absl::Status s = importer.Import(**chunk, a, tokens.subspan(a, b - a), cache, nullptr,
                                           req_.prefix_dtype());
          !s.ok()) {
        return rpc::ToGrpcStatus(s);
      }
    }
    if (assembler.in_progress() || cache.length() != prefix) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("Prefill: prefix chunks cover ", cache.length(),
                                       " tokens, prefix_tokens says ", prefix));
    }
    bool first = true;
    int chunk_index = (prefix + chunk_tokens - 1) / chunk_tokens;
    for (int a = prefix; a < n; a += chunk_tokens, ++chunk_index) {
      if (Stop()) return grpc::Status(grpc::StatusCode::CANCELLED, "Prefill cancelled");
      const int b = std::min(n, a + chunk_tokens);
      const auto t0 = Clock::now();
      if (absl::Status s =
              m.Forward(tokens.subspan(a, b - a), cache, model::Logits::kNone, nullptr);
          !s.ok()) {
        return rpc::ToGrpcStatus(s);
      }
      const double secs = SecondsSince(t0);
      obs::InferenceMetrics::Get().AddPrefillTokens(obs::Form::kText, b - a, secs);
      absl::StatusOr<std::vector<std::byte>> bytes = cache.Export(a, b, *dtype);
      if (!bytes.ok()) return rpc::ToGrpcStatus(bytes.status());
      v1::ChunkRef ref;
      ref.set_context_id(req_.context_id());
      ref.set_chunk_index(chunk_index);
      ref.set_token_begin(a);
      ref.set_token_end(b);
      std::vector<v1::KvChunkPart> parts = rpc::SplitKvChunk(
          ref, v1::KV_ENCODING_RAW, -1,
          std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size()));
      for (size_t p = 0; p < parts.size(); ++p) {
        v1::PrefillResponse r;
        *r.mutable_part() = std::move(parts[p]);
        if (first) {
          const model::LlamaConfig& c = m.config();
          r.mutable_geometry()->set_num_layers(c.num_layers);
          r.mutable_geometry()->set_num_kv_heads(c.num_kv_heads);
          r.mutable_geometry()->set_head_dim(c.head_dim);
          r.mutable_geometry()->set_dtype(export_dtype);
          first = false;
        }
        r.set_dtype(export_dtype);
        if (p + 1 == parts.size()) r.set_prefill_seconds(secs);
        if (!Send(std::move(r))) {
          return grpc::Status(grpc::StatusCode::CANCELLED, "Prefill: client went away");
        }
      }
    }
    return grpc::Status::OK;
  }

  std::shared_ptr<InferenceService::Shared> shared_;
  grpc::CallbackServerContext* ctx_;
  v1::PrefillRequest req_;
};

}  // namespace

grpc::ServerWriteReactor<v1::PrefillResponse>* InferenceService::Prefill(
    grpc::CallbackServerContext* ctx, const v1::PrefillRequest* request) {
  return new PrefillReactor(shared_, ctx, request);
}

// ------------------------------------------------------------------ Generate

namespace {

// One context segment as the worker sees it.
struct Segment {
  int begin = 0, end = 0;
  v1::Form form = v1::FORM_TEXT;  // current form: a KV segment may turn into text
  int level = -1;
  v1::DType kv_dtype = v1::DTYPE_UNSPECIFIED;  // declared element type of RAW chunks
  std::vector<int32_t> tokens;
  bool done = false;
};

class GenerateReactor final
    : public Outbox<grpc::ServerBidiReactor<v1::GenerateRequest, v1::GenerateResponse>,
                    v1::GenerateResponse> {
 public:
  GenerateReactor(std::shared_ptr<InferenceService::Shared> shared,
                  grpc::CallbackServerContext* ctx)
      : shared_(std::move(shared)), ctx_(ctx), arrival_(Clock::now()) {
    InboundKvMetrics::Get();  // registered before the first scrape
    StartRead(&req_);
  }
  ~GenerateReactor() override { InboundKvMetrics::Get().Remove(double(inbox_.caller_bytes())); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      InboundEvent e;
      e.kind = InboundEvent::Kind::kEndOfStream;
      inbox_.Push(std::move(e));
      if (!started_)
        Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           "Generate: stream ended before GenerateStart"));
      return;
    }
    if (!started_) {
      if (req_.msg_case() != v1::GenerateRequest::kStart) {
        Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           "Generate: the first message must be GenerateStart"));
        return;
      }
      started_ = true;
      start_ = req_.start();
      Ref();
      absl::Status s = shared_->pool->Submit([this] {
        Close(Run());
        Unref();
      });
      if (!s.ok()) {
        Unref();
        Close(rpc::ToGrpcStatus(s));
        return;
      }
    } else {
      InboundEvent e;
      if (req_.msg_case() == v1::GenerateRequest::kKv) {
        e.kind = InboundEvent::Kind::kPart;
        e.part = std::move(*req_.mutable_kv());
      } else if (req_.msg_case() == v1::GenerateRequest::kReplan) {
        e.kind = InboundEvent::Kind::kReplan;
        e.replan = std::move(*req_.mutable_replan());
      } else {
        e.kind = InboundEvent::Kind::kReplan;  // a second GenerateStart: rejected by the worker
        e.reason = "duplicate GenerateStart";
      }
      const size_t bytes = CallerBytes(e);
      inbox_.Push(std::move(e));
      if (bytes > 0) {
        InboundKvMetrics::Get().Add(double(bytes));
        InboundKvMetrics::Get().ObservePeak(double(inbox_.peak_caller_bytes()));
      }
    }
    ContinueReading();
  }

 private:
  void OnCancelled() override { inbox_.Notify(); }

  // Inbound flow control. gRPC thread, after a message: read the next one unless the caller's
  // unprocessed KV parts fill the budget; then no read is outstanding, gRPC stops taking the
  // stream's bytes and its flow-control window holds the sender back until the worker
  // resumes reading (Consumed).
  void ContinueReading() {
    std::lock_guard<std::recursive_mutex> lock(read_mu_);
    if (closing()) return;
    if (inbox_.caller_bytes() >= shared_->options.max_inbound_kv_bytes) {
      read_paused_ = true;
      InboundKvMetrics::Get().Paused();
      return;
    }
    StartRead(&req_);
  }
  // Worker, after taking an event from the inbox.
  void Consumed(const InboundEvent& e) {
    const size_t bytes = CallerBytes(e);
    if (bytes == 0) return;
    InboundKvMetrics::Get().Remove(double(bytes));
    std::lock_guard<std::recursive_mutex> lock(read_mu_);
    if (read_paused_ && !closing() &&
        inbox_.caller_bytes() < shared_->options.max_inbound_kv_bytes) {
      read_paused_ = false;
      StartRead(&req_);
    }
  }
  bool Stop() const { return cancelled() || shared_->stopping; }

  grpc::Status Run() {
    shared_->active++;
    grpc::Status s;
    std::string log_error;
    {
      absl::Status st = RunImpl();
      if (!st.ok() && Stop() && st.code() != absl::StatusCode::kInvalidArgument &&
          st.code() != absl::StatusCode::kFailedPrecondition) {
        st = absl::CancelledError("Generate cancelled");
      }
      s = rpc::ToGrpcStatus(st);
      if (!st.ok()) log_error = std::string(st.message());
    }
    if (fetcher_) fetcher_->Stop();
    shared_->active--;
    spdlog::info(
        "generate id={} status={} segments text={} compressed={} kv={} context_tokens={} "
        "kv_tokens={} question_tokens={} generated={} ttft={:.3f}s total={:.3f}s{}{}",
        start_.request_id().empty() ? "-" : start_.request_id(), s.ok() ? "OK" : log_error,
        seg_count_[v1::FORM_TEXT], seg_count_[v1::FORM_COMPRESSED_TEXT], seg_count_[v1::FORM_KV],
        context_tokens_, kv_tokens_, question_tokens_, generated_, ttft_, SecondsSince(arrival_),
        fell_back_ ? " fell_back=" : "", fell_back_ ? fallback_reason_ : "");
    return s;
  }

  // Parses GenerateStart into segments + question and checks everything checkable up front.
  absl::Status Prepare() {
    const model::Model& m = *shared_->model;
    const TokenizerApi& tok = *shared_->tokenizer;
    std::string error;
    if (!start_.context_text().empty() && start_.segments_size() > 0) {
      return absl::InvalidArgumentError("Generate: give either segments or context_text, not both");
    }
    if (!start_.context_text().empty()) {
      Segment s;
      if (!tok.Encode(start_.context_text(), true, &s.tokens, &error)) {
        return absl::InvalidArgumentError(absl::StrCat("Generate: context_text: ", error));
      }
      s.begin = 0;
      s.end = static_cast<int>(s.tokens.size());
      segments_.push_back(std::move(s));
    }
    int pos = 0;
    for (int i = 0; i < start_.segments_size(); ++i) {
      const v1::ContextSegment& cs = start_.segments(i);
      if (static_cast<int>(cs.token_begin()) != pos || cs.token_end() <= cs.token_begin()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Generate: segment ", i, " covers [", cs.token_begin(), ", ", cs.token_end(),
            "); segments must tile [0, n) in order (next expected begin ", pos, ")"));
      }
      if (cs.form() != v1::FORM_TEXT && cs.form() != v1::FORM_COMPRESSED_TEXT &&
          cs.form() != v1::FORM_KV) {
        return absl::InvalidArgumentError(
            absl::StrCat("Generate: segment ", i, " has no valid form"));
      }
      const int len = static_cast<int>(cs.token_end() - cs.token_begin());
      if (cs.tokens().ids_size() != len) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Generate: segment ", i, " spans ", len, " tokens but carries ", cs.tokens().ids_size(),
            " token ids (segments must always carry their tokens)"));
      }
      if (absl::StatusOr<std::optional<tensor::DType>> d = RawKvDType(cs.kv_dtype()); !d.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("Generate: segment ", i, " kv_dtype: ", d.status().message()));
      }
      Segment s;
      s.begin = pos;
      s.end = static_cast<int>(cs.token_end());
      s.form = cs.form();
      s.level = cs.level();
      s.kv_dtype = cs.kv_dtype();
      s.tokens.assign(cs.tokens().ids().begin(), cs.tokens().ids().end());
      segments_.push_back(std::move(s));
      pos = static_cast<int>(cs.token_end());
    }
    if (segments_.empty() || segments_.back().end == 0) {
      return absl::InvalidArgumentError("Generate: empty context");
    }
    context_tokens_ = segments_.back().end;
    for (const Segment& s : segments_) {
      seg_count_[s.form]++;
      context_.insert(context_.end(), s.tokens.begin(), s.tokens.end());
    }
    if (start_.question().ids_size() > 0) {
      question_.assign(start_.question().ids().begin(), start_.question().ids().end());
    } else if (!start_.question_text().empty()) {
      if (!tok.Encode(start_.question_text(), false, &question_, &error)) {
        return absl::InvalidArgumentError(absl::StrCat("Generate: question_text: ", error));
      }
    }
    question_tokens_ = static_cast<int>(question_.size());
    if (absl::Status s = m.CheckTokens(context_); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("Generate: context: ", s.message()));
    }
    if (!question_.empty()) {
      if (absl::Status s = m.CheckTokens(question_); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("Generate: question: ", s.message()));
      }
    }
    const v1::SamplingParams& sp = start_.sampling();
    max_new_ =
        sp.max_new_tokens() > 0 ? static_cast<int>(sp.max_new_tokens()) : kDefaultMaxNewTokens;
    const int64_t need = int64_t{context_tokens_} + question_tokens_ + max_new_;
    if (need > m.config().max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Generate: context (", context_tokens_, ") + question (", question_tokens_,
          ") + max_new_tokens (", max_new_, ") = ", need, " tokens exceed the model's context of ",
          m.config().max_position_embeddings));
    }
    return absl::OkStatus();
  }

  // Prefills tokens [cache.length(), end) of segment `s` from its token ids.
  absl::Status PrefillText(const Segment& s, model::KvCache& cache) {
    const model::Model& m = *shared_->model;
    const auto t0 = Clock::now();
    int a = cache.length();
    const int count = s.end - a;
    while (a < s.end) {
      if (Stop()) return absl::CancelledError("Generate cancelled");
      const int b = std::min(s.end, a + kPrefillBlockTokens);
      std::span<const int32_t> ids(s.tokens.data() + (a - s.begin), b - a);
      if (absl::Status st = m.Forward(ids, cache, model::Logits::kNone, nullptr); !st.ok()) {
        return st;
      }
      a = b;
    }
    const double secs = SecondsSince(t0);
    prefill_seconds_ += secs;
    prefilled_tokens_ += count;
    const v1::Form f = s.form == v1::FORM_KV ? v1::FORM_TEXT : s.form;
    obs::InferenceMetrics::Get().AddPrefillTokens(MetricForm(f), count, secs);
    AddBytes(f, -1, uint64_t(count) * 4, 1);
    return absl::OkStatus();
  }

  void AddBytes(v1::Form form, int level, uint64_t bytes, uint32_t chunks) {
    auto& [b, c] = bytes_[{form, level}];
    b += bytes;
    c += chunks;
  }

  // Marks segments >= first that are still KV as text (fallback or replanner).
  void SwitchToText(size_t first, bool failure, const std::string& reason) {
    for (size_t i = first; i < segments_.size(); ++i) {
      if (segments_[i].form == v1::FORM_KV && !segments_[i].done) segments_[i].form = v1::FORM_TEXT;
    }
    if (failure && !fell_back_) {
      fell_back_ = true;
      fallback_reason_ = reason;
    }
  }

  absl::Status ImportChunk(const rpc::KvChunk& chunk, Segment& s, model::KvCache& cache) {
    const KvImporter importer = shared_->importer();
    KvImporter::Stats st;
    const int a = cache.length();
    if (static_cast<int>(chunk.ref.token_begin()) != a ||
        static_cast<int>(chunk.ref.token_end()) > s.end ||
        chunk.ref.token_end() <= chunk.ref.token_begin()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Generate: KV chunk for tokens [", chunk.ref.token_begin(), ", ", chunk.ref.token_end(),
          ") does not continue the cache at ", a, " within segment [", s.begin, ", ", s.end, ")"));
    }
    const int b = static_cast<int>(chunk.ref.token_end());
    absl::Status status =
        importer.Import(chunk, a, std::span<const int32_t>(s.tokens.data() + (a - s.begin), b - a),
                        cache, &st, s.kv_dtype);
    if (!status.ok()) return status;
    decode_seconds_ += st.decode_seconds;
    kv_tokens_ += b - a;
    if (st.recomputed_layer0) layer0_tokens_ += b - a;
    AddBytes(v1::FORM_KV, chunk.level, chunk.bytes.size(), 1);
    obs::InferenceMetrics::Get().ObserveCodecDecode(
        chunk.encoding == v1::KV_ENCODING_CACHEGEN ? chunk.level : -1,
        static_cast<double>(chunk.bytes.size()), static_cast<double>(st.output_bytes),
        st.decode_seconds);
    return absl::OkStatus();
  }

  // Fills the cache for KV segment `idx`, consuming inbox events until it is complete (or it
  // turns into text).
  absl::Status FillKvSegment(size_t idx, model::KvCache& cache) {
    Segment& s = segments_[idx];
    while (s.form == v1::FORM_KV && cache.length() < s.end) {
      std::optional<InboundEvent> e = inbox_.Pop([this] { return Stop(); }, &fetch_seconds_);
      if (!e) return absl::CancelledError("Generate cancelled");
      Consumed(*e);
      switch (e->kind) {
        case InboundEvent::Kind::kEndOfStream:
          if (!fetcher_) {
            return absl::InvalidArgumentError(
                absl::StrCat("Generate: the request stream ended before the KV of tokens [",
                             cache.length(), ", ", s.end, ") arrived"));
          }
          break;
        case InboundEvent::Kind::kReplan: {
          if (!e->reason.empty()) return absl::InvalidArgumentError("Generate: " + e->reason);
          const int b = static_cast<int>(e->replan.token_begin());
          if (e->replan.form() == v1::FORM_KV) break;  // nothing to change
          for (size_t j = idx; j < segments_.size(); ++j) {
            if (segments_[j].begin == b && segments_[j].form == v1::FORM_KV) {
              segments_[j].form = e->replan.form() == v1::FORM_COMPRESSED_TEXT
                                      ? v1::FORM_COMPRESSED_TEXT
                                      : v1::FORM_TEXT;
            }
          }
          break;
        }
        case InboundEvent::Kind::kPart: {
          if (fetcher_) break;  // KV comes from the KvSource
          absl::StatusOr<std::optional<rpc::KvChunk>> chunk = assembler_.Add(e->part);
          if (!chunk.ok()) return chunk.status();
          if (chunk->has_value()) {
            if (absl::Status st = ImportChunk(**chunk, s, cache); !st.ok()) return st;
          }
          break;
        }
        case InboundEvent::Kind::kFetched: {
          if (e->segment != idx) {
            SwitchToText(idx, true, "kvcache sent chunks out of order");
            fetcher_->Stop();
            break;
          }
          absl::Status st = ImportChunk(e->chunk, s, cache);
          if (!st.ok()) {
            // A stored chunk we cannot use: prefill the rest from tokens instead.
            SwitchToText(idx, true, absl::StrCat("chunk ", idx, ": ", st.message()));
            fetcher_->Stop();
          }
          break;
        }
        case InboundEvent::Kind::kTextFrom:
          SwitchToText(e->segment, e->failure, e->reason);
          break;
      }
    }
    return absl::OkStatus();
  }

  absl::Status RunImpl() {
    queue_seconds_ = SecondsSince(arrival_);
    if (Stop()) return absl::CancelledError("Generate cancelled");
    if (absl::Status s = Prepare(); !s.ok()) return s;
    const model::Model& m = *shared_->model;
    model::KvCache cache = m.NewKvCache(context_tokens_ + question_tokens_ + max_new_);

    if (start_.has_kv_source() && !start_.kv_source().kvcache_address().empty()) {
      std::vector<SegmentSpan> spans;
      for (size_t i = 0; i < segments_.size(); ++i) {
        SegmentSpan sp{segments_[i].begin, segments_[i].end, segments_[i].form == v1::FORM_KV,
                       segments_[i].level};
        for (const v1::ChunkPlan& p : start_.kv_source().plan()) {
          if (p.chunk_index() == i) {
            sp.kv = sp.kv && p.form() != v1::FORM_TEXT;
            sp.level = p.level();
          }
        }
        if (!sp.kv && segments_[i].form == v1::FORM_KV) segments_[i].form = v1::FORM_TEXT;
        spans.push_back(sp);
      }
      std::optional<std::chrono::system_clock::time_point> deadline;
      if (ctx_->deadline() != std::chrono::system_clock::time_point::max()) {
        deadline = ctx_->deadline();
      }
      fetcher_ = std::make_unique<KvSourceFetcher>(start_.kv_source(), std::move(spans), deadline,
                                                   inbox_, [this](const v1::ChunkDecision& d) {
                                                     v1::GenerateResponse r;
                                                     *r.mutable_decision() = d;
                                                     Send(std::move(r));
                                                   });
      fetcher_->Start();
    }

    for (size_t i = 0; i < segments_.size(); ++i) {
      if (Stop()) return absl::CancelledError("Generate cancelled");
      Segment& s = segments_[i];
      if (s.form == v1::FORM_KV) {
        if (absl::Status st = FillKvSegment(i, cache); !st.ok()) return st;
      }
      if (s.form != v1::FORM_KV && cache.length() < s.end) {
        if (absl::Status st = PrefillText(s, cache); !st.ok()) return st;
      }
      s.done = true;
    }
    if (fetcher_) fetcher_->Stop();

    // Question + generation, streaming each token with incremental detokenization.
    std::vector<int32_t> all = context_;
    all.insert(all.end(), question_.begin(), question_.end());
    const v1::SamplingParams& sp = start_.sampling();
    model::GenerateOptions opts;
    opts.sampling.temperature = sp.temperature();
    opts.sampling.top_p = sp.top_p() > 0 ? sp.top_p() : 1.0f;
    opts.sampling.seed = sp.seed();
    opts.max_new_tokens = max_new_;
    opts.stop_at_eos = sp.stop_at_eos();
    std::unique_ptr<StreamDecoderApi> decoder = shared_->tokenizer->NewStreamDecoder(false);
    absl::StatusOr<model::GenerateResult> result =
        model::Generate(m, all, cache, opts, [&](int32_t id) {
          if (Stop()) return false;
          if (generated_ == 0) ttft_ = SecondsSince(arrival_);
          v1::GenerateResponse r;
          r.mutable_token()->set_id(id);
          r.mutable_token()->set_text(decoder->Push(id));
          r.mutable_token()->set_index(generated_++);
          return Send(std::move(r));
        });
    if (!result.ok()) return result.status();
    if (Stop() || result->finish == model::FinishReason::kStoppedByCallback) {
      return absl::CancelledError("Generate cancelled");
    }
    prefill_seconds_ += result->prefill_seconds;
    const double total = SecondsSince(arrival_);
    const v1::Form main_form = kv_tokens_ > 0                             ? v1::FORM_KV
                               : seg_count_[v1::FORM_COMPRESSED_TEXT] > 0 ? v1::FORM_COMPRESSED_TEXT
                                                                          : v1::FORM_TEXT;
    auto& metrics = obs::InferenceMetrics::Get();
    if (result->prefilled_tokens > 0) {
      metrics.AddPrefillTokens(MetricForm(main_form), result->prefilled_tokens,
                               result->prefill_seconds);
    }
    metrics.AddDecodeTokens(generated_);
    if (generated_ > 0) metrics.ObserveTtft(MetricForm(main_form), ttft_);

    v1::GenerateResponse r;
    v1::GenerateDone* d = r.mutable_done();
    v1::StageTimings* t = d->mutable_timings();
    t->set_queue_seconds(queue_seconds_);
    t->set_fetch_seconds(fetch_seconds_);
    t->set_decode_seconds(decode_seconds_);
    t->set_prefill_seconds(prefill_seconds_);
    t->set_ttft_seconds(ttft_);
    t->set_total_seconds(total);
    d->set_context_tokens(context_tokens_);
    d->set_kv_tokens(kv_tokens_);
    d->set_prefilled_tokens(prefilled_tokens_);
    d->set_generated_tokens(generated_);
    d->set_finish_reason(result->finish == model::FinishReason::kEos ? "eos" : "length");
    for (const auto& [key, value] : bytes_) {
      v1::ByteCount* b = d->add_bytes();
      b->set_form(key.first);
      b->set_level(key.second);
      b->set_bytes(value.first);
      b->set_chunks(value.second);
    }
    d->set_fell_back(fell_back_);
    d->set_fallback_reason(fallback_reason_);
    Send(std::move(r));
    return absl::OkStatus();
  }

  std::shared_ptr<InferenceService::Shared> shared_;
  grpc::CallbackServerContext* ctx_;
  const Clock::time_point arrival_;
  v1::GenerateRequest req_;  // read buffer (gRPC thread only)
  bool started_ = false;     // gRPC thread only
  v1::GenerateStart start_;  // written before the worker starts
  Inbox inbox_;
  // Orders StartRead between the gRPC thread and the worker (recursive: gRPC may run
  // OnReadDone inline from StartRead).
  std::recursive_mutex read_mu_;
  bool read_paused_ = false;  // no read outstanding because the inbox is full

  // Worker state.
  std::vector<Segment> segments_;
  std::vector<int32_t> context_, question_;
  std::map<int, int> seg_count_;
  int context_tokens_ = 0, question_tokens_ = 0, max_new_ = 0;
  int kv_tokens_ = 0, prefilled_tokens_ = 0, layer0_tokens_ = 0;
  uint32_t generated_ = 0;
  double queue_seconds_ = 0, fetch_seconds_ = 0, decode_seconds_ = 0, prefill_seconds_ = 0;
  double ttft_ = 0;
  bool fell_back_ = false;
  std::string fallback_reason_;
  std::map<std::pair<v1::Form, int>, std::pair<uint64_t, uint32_t>> bytes_;
  rpc::KvPartAssembler assembler_{kMaxChunkBytes};
  std::unique_ptr<KvSourceFetcher> fetcher_;
};

}  // namespace

grpc::ServerBidiReactor<v1::GenerateRequest, v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* ctx) {
  return new GenerateReactor(shared_, ctx);
}

}  // namespace ctx::inference
