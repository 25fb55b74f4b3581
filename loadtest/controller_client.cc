#include "loadtest/controller_client.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/rpc/channel.h"
#include "ctxstream/v1/kvcache.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace ctx::loadtest {
namespace pb = ctxstream::v1;
namespace {

using Clock = std::chrono::steady_clock;

// One in-flight Query: reads events until the stream ends, fills the record, reports it,
// deletes itself (OnDone is the reactor's last callback).
class QueryReactor : public grpc::ClientReadReactor<pb::QueryEvent> {
 public:
  QueryReactor(pb::Controller::Stub* stub, const QueryTemplate& tmpl, const QuerySpec& spec,
               std::function<void(QueryRecord)> done)
      : done_(std::move(done)) {
    request_.set_context_id(spec.context_id);
    request_.set_question(spec.question);
    request_.set_max_tokens(tmpl.max_tokens);
    request_.set_slo_ttft_seconds(tmpl.slo_ttft_seconds);
    request_.set_max_quality_loss(tmpl.max_quality_loss);
    request_.set_force_form(tmpl.force_form);
    request_.set_force_level(tmpl.force_level);
    request_.set_objective(tmpl.objective);
    request_.set_seed(spec.index + 1);
    if (!tmpl.api_key.empty()) context_.AddMetadata("x-api-key", tmpl.api_key);
    context_.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(tmpl.deadline_seconds * 1000)));
    start_ = Clock::now();
    stub->async()->Query(&context_, &request_, this);
    StartRead(&event_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream is over; OnDone follows
    Handle(event_);
    StartRead(&event_);
  }

  void OnDone(const grpc::Status& status) override {
    record_.total_seconds = Seconds();
    record_.status_code = static_cast<int>(status.error_code());
    record_.status_message = status.error_message();
    // Final per-chunk delivery: the plan, overridden by each re-planning decision.
    done_(std::move(record_));
    delete this;
  }

 private:
  double Seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  void Handle(const pb::QueryEvent& e) {
    switch (e.event_case()) {
      case pb::QueryEvent::kPlan: {
        const pb::Plan& p = e.plan();
        record_.plan_form = FormKind(p.form());
        record_.predicted_ttft_seconds = p.predicted_ttft_seconds();
        record_.bandwidth_estimate_bytes_per_second = p.bandwidth_estimate_bytes_per_second();
        record_.plan_reason = p.reason();
        for (const auto& c : p.chunks()) {
          record_.plan_levels.push_back(c.form() == pb::FORM_KV ? c.level() : -1);
        }
        record_.final_levels = record_.plan_levels;
        break;
      }
      case pb::QueryEvent::kDecision: {
        const pb::ChunkDecision& d = e.decision();
        const int level = d.form() == pb::FORM_KV ? d.level() : -1;
        if (d.chunk_index() >= record_.final_levels.size()) {
          record_.final_levels.resize(d.chunk_index() + 1, level);
        }
        if (record_.final_levels[d.chunk_index()] != level) ++record_.replans;
        record_.final_levels[d.chunk_index()] = level;
        break;
      }
      case pb::QueryEvent::kToken:
        if (record_.ttft_seconds < 0) record_.ttft_seconds = Seconds();
        break;
      case pb::QueryEvent::kResult: {
        const pb::QueryResult& r = e.result();
        const pb::StageTimings& t = r.timings();
        record_.stages = {t.queue_seconds(),   t.fetch_seconds(),    t.decode_seconds(),
                          t.prefill_seconds(), t.compress_seconds(), t.ttft_seconds(),
                          t.total_seconds()};
        for (const auto& b : r.bytes()) {
          record_.bytes.push_back({FormKind(b.form()), b.form() == pb::FORM_KV ? b.level() : -1,
                                   b.bytes(), b.chunks()});
        }
        record_.server_slo_met = r.slo_met();
        record_.fell_back = r.fell_back();
        record_.fallback_reason = r.fallback_reason();
        record_.generated_tokens = r.generated_tokens();
        record_.endpoint = r.inference_endpoint();
        break;
      }
      default:
        break;
    }
  }

  grpc::ClientContext context_;
  pb::QueryRequest request_;
  pb::QueryEvent event_;
  QueryRecord record_;
  Clock::time_point start_;
  std::function<void(QueryRecord)> done_;
};

}  // namespace

std::string FormKind(pb::Form form) {
  switch (form) {
    case pb::FORM_TEXT:
      return "text";
    case pb::FORM_COMPRESSED_TEXT:
      return "ctext";
    case pb::FORM_KV:
      return "kv";
    default:
      return "unspecified";
  }
}

ControllerClient::ControllerClient(std::shared_ptr<grpc::Channel> channel, QueryTemplate tmpl)
    : stub_(pb::Controller::NewStub(std::move(channel))), tmpl_(std::move(tmpl)) {}

void ControllerClient::StartQuery(const QuerySpec& spec, std::function<void(QueryRecord)> done) {
  new QueryReactor(stub_.get(), tmpl_, spec, std::move(done));  // deletes itself in OnDone
}

absl::StatusOr<bool> ControllerClient::Exists(const std::string& context_id) {
  grpc::ClientContext ctx;
  if (!tmpl_.api_key.empty()) ctx.AddMetadata("x-api-key", tmpl_.api_key);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  pb::GetContextRequest req;
  req.set_context_id(context_id);
  pb::ContextInfo info;
  const grpc::Status status = stub_->GetContext(&ctx, req, &info);
  if (status.ok()) return true;
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) return false;
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat("GetContext(", context_id, "): ", status.error_message()));
}

absl::StatusOr<ControllerClient::Registered> ControllerClient::Register(const std::string& text,
                                                                        const std::string& name,
                                                                        bool precompute_compressed,
                                                                        double timeout_seconds) {
  grpc::ClientContext ctx;
  if (!tmpl_.api_key.empty()) ctx.AddMetadata("x-api-key", tmpl_.api_key);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  pb::RegisterContextRequest req;
  req.set_text(text);
  req.set_name(name);
  req.set_precompute_compressed(precompute_compressed);
  auto reader = stub_->RegisterContext(&ctx, req);
  pb::RegisterProgress p;
  Registered out;
  while (reader->Read(&p)) {
    out.context_id = p.context_id();
    if (p.tokens() > 0) out.tokens = p.tokens();
    if (p.chunks_total() > 0) out.chunks = p.chunks_total();
    out.kv_ready = p.ready();
    out.message = p.message();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("RegisterContext(", name, "): ", status.error_message()));
  }
  if (out.context_id.empty()) {
    return absl::InternalError(absl::StrCat("RegisterContext(", name, ") returned no context id"));
  }
  return out;
}

absl::StatusOr<nlohmann::json> FetchCodecInfo(const std::string& kvcache_address) {
  auto channel = rpc::MakeChannel(kvcache_address);
  if (!channel.ok()) return channel.status();
  auto stub = pb::KvCache::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  pb::GetCodecInfoRequest req;
  pb::CodecInfo info;
  grpc::Status status = stub->GetCodecInfo(&ctx, req, &info);
  if (!status.ok()) {
    return absl::Status(
        static_cast<absl::StatusCode>(status.error_code()),
        absl::StrCat("kvcache ", kvcache_address, " GetCodecInfo: ", status.error_message()));
  }
  nlohmann::json j;
  j["levels"] = nlohmann::json::array();
  for (const auto& l : info.levels()) {
    j["levels"].push_back({{"level", l.level()},
                           {"bits_per_element", l.bits_per_element()},
                           {"quality_loss", l.quality_loss()}});
  }
  j["quant8_bits_per_element"] = info.quant8_bits_per_element();
  j["quant8_quality_loss"] = info.quant8_quality_loss();
  return j;
}

}  // namespace ctx::loadtest
