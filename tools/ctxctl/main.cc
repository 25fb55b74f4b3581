// ctxctl: command-line client for a ctxstream cluster.
//
//   ctxctl health ADDRESS...      grpc.health.v1 status of each server; exit 1 unless all SERVING
//   ctxctl --controller=ADDR [--api_key=K] register FILE [--name=N] [--precompute_compressed]
//                                 registers FILE's text; prints the context id and progress
//   ctxctl --controller=ADDR query --context_id=ID --question=Q [--slo=0.5]
//          [--form=kv|text|ctext] [--level=N] [--max_tokens=N] [--quality_floor=X]
//          [--objective=quality|fastest]
//                                 prints the plan, streams the answer, prints the timings
//   ctxctl --controller=ADDR list | delete ID
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "common/rpc/channel.h"
#include "ctxstream/v1/controller.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/controller/client/controller_client.h"

ABSL_FLAG(double, timeout_seconds, 5.0, "Deadline of each short call (health, list, delete).");
ABSL_FLAG(double, stream_timeout_seconds, 600.0, "Deadline of register and query.");
ABSL_FLAG(std::string, controller, "127.0.0.1:50050", "Controller address.");
ABSL_FLAG(std::string, api_key, "", "API key sent as x-api-key (empty: anonymous).");
ABSL_FLAG(std::string, name, "", "register: a human-readable name.");
ABSL_FLAG(bool, precompute_compressed, false, "register: also store compressed text.");
ABSL_FLAG(std::string, context_id, "", "query: the registered context.");
ABSL_FLAG(std::string, context_file, "", "query: inline context text from this file instead.");
ABSL_FLAG(std::string, question, "", "query: the question.");
ABSL_FLAG(double, slo, 0.0, "query: TTFT objective in seconds (0 = none: best quality).");
ABSL_FLAG(std::string, form, "", "query: force kv | text | ctext (empty = controller decides).");
ABSL_FLAG(int32_t, level, -1, "query: with --form=kv, force this KV level (-1 = choose).");
ABSL_FLAG(uint32_t, max_tokens, 64, "query: tokens to generate.");
ABSL_FLAG(double, quality_floor, 0.0, "query: max quality loss (0 = none).");
ABSL_FLAG(double, temperature, 0.0, "query: 0 = greedy.");
ABSL_FLAG(std::string, objective, "",
          "query: quality (best quality within the SLO, the default) | fastest (fastest within "
          "the quality floor)");
ABSL_FLAG(bool, adapt, false, "query: ask for per-chunk re-planning (server default otherwise).");

namespace {

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::duration<double>(absl::GetFlag(FLAGS_timeout_seconds)));
}

int Health(const std::vector<std::string>& addresses) {
  int bad = 0;
  for (const std::string& address : addresses) {
    auto channel = ctx::rpc::MakeChannel(address);
    if (!channel.ok()) {
      std::fprintf(stderr, "ctxctl: %s\n", std::string(channel.status().message()).c_str());
      return 2;
    }
    auto stub = grpc::health::v1::Health::NewStub(*channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    grpc::health::v1::HealthCheckResponse resp;
    const grpc::Status s = stub->Check(&ctx, {}, &resp);
    const std::string status =
        s.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status())
               : "UNREACHABLE (" + s.error_message() + ")";
    std::printf("%-24s %s\n", address.c_str(), status.c_str());
    if (!s.ok() || resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) ++bad;
  }
  return bad == 0 ? 0 : 1;
}

namespace pb = ctxstream::v1;

// The client library (services/controller/client) with this process's flags: the channel
// honours --client_tls_* (common/rpc/channel.h).
std::unique_ptr<ctx::client::ControllerClient> Client() {
  ctx::client::ClientOptions o;
  o.target = absl::GetFlag(FLAGS_controller);
  o.api_key = absl::GetFlag(FLAGS_api_key);
  o.call_timeout_seconds = absl::GetFlag(FLAGS_timeout_seconds);
  o.stream_timeout_seconds = absl::GetFlag(FLAGS_stream_timeout_seconds);
  absl::StatusOr<std::unique_ptr<ctx::client::ControllerClient>> c =
      ctx::client::ControllerClient::Connect(o);
  if (!c.ok()) {
    std::fprintf(stderr, "ctxctl: %s\n", std::string(c.status().message()).c_str());
    return nullptr;
  }
  return *std::move(c);
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "ctxctl: %s: %s\n", absl::StatusCodeToString(s.code()).c_str(),
               std::string(s.message()).c_str());
  return 1;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "ctxctl: cannot read %s\n", path.c_str());
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

const char* FormName(pb::Form f) {
  switch (f) {
    case pb::FORM_TEXT:
      return "text";
    case pb::FORM_COMPRESSED_TEXT:
      return "compressed-text";
    case pb::FORM_KV:
      return "kv";
    default:
      return "?";
  }
}

int Register(const std::string& file) {
  std::string text;
  if (!ReadFile(file, &text)) return 2;
  ctx::client::RegisterOptions ro;
  ro.name = absl::GetFlag(FLAGS_name).empty() ? file : absl::GetFlag(FLAGS_name);
  ro.precompute_compressed = absl::GetFlag(FLAGS_precompute_compressed);
  auto client = Client();
  if (!client) return 2;
  absl::StatusOr<ctx::client::Registered> r =
      client->Register(text, ro, [](const pb::RegisterProgress& p) {
        std::printf("%s tokens=%u chunks=%u/%u %s%s\n", p.context_id().c_str(), p.tokens(),
                    p.chunks_done(), p.chunks_total(), p.message().c_str(),
                    p.ready() ? " [ready]" : "");
      });
  if (!r.ok()) return Fail(r.status());
  std::printf("context_id=%s kv_ready=%s\n", r->context_id.c_str(), r->kv_ready ? "true" : "false");
  return 0;
}

int Query() {
  pb::QueryRequest req;
  if (const std::string f = absl::GetFlag(FLAGS_context_file); !f.empty()) {
    if (!ReadFile(f, req.mutable_context_text())) return 2;
  } else {
    req.set_context_id(absl::GetFlag(FLAGS_context_id));
  }
  req.set_question(absl::GetFlag(FLAGS_question));
  req.set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  req.set_slo_ttft_seconds(absl::GetFlag(FLAGS_slo));
  req.set_max_quality_loss(absl::GetFlag(FLAGS_quality_floor));
  req.set_temperature(static_cast<float>(absl::GetFlag(FLAGS_temperature)));
  req.set_adapt_per_chunk(absl::GetFlag(FLAGS_adapt));
  req.set_force_level(absl::GetFlag(FLAGS_level));
  if (const std::string o = absl::GetFlag(FLAGS_objective); o == "fastest") {
    req.set_objective(pb::OBJECTIVE_FASTEST_WITHIN_FLOOR);
  } else if (o == "quality") {
    req.set_objective(pb::OBJECTIVE_BEST_QUALITY_WITHIN_SLO);
  } else if (!o.empty()) {
    std::fprintf(stderr, "ctxctl: --objective must be quality or fastest\n");
    return 2;
  }
  const std::string form = absl::GetFlag(FLAGS_form);
  if (form == "kv") {
    req.set_force_form(pb::FORM_KV);
  } else if (form == "text") {
    req.set_force_form(pb::FORM_TEXT);
  } else if (form == "ctext" || form == "compressed") {
    req.set_force_form(pb::FORM_COMPRESSED_TEXT);
  } else if (!form.empty()) {
    std::fprintf(stderr, "ctxctl: --form must be kv, text or ctext\n");
    return 2;
  }
  auto client = Client();
  if (!client) return 2;
  ctx::client::QueryCallbacks cb;
  cb.on_plan = [](const pb::Plan& p) {
    std::printf("plan: %s", FormName(p.form()));
    if (p.form() == pb::FORM_KV && p.chunks_size() > 0) {
      std::printf(" level=%d chunks=%d", p.chunks(0).level(), p.chunks_size());
    }
    if (p.form() == pb::FORM_COMPRESSED_TEXT) std::printf(" rate=%.2f", p.compress_rate());
    std::printf(" predicted_ttft=%.3fs loss=%.4f bandwidth_estimate=%.3g B/s\n  reason: %s\n",
                p.predicted_ttft_seconds(), p.predicted_quality_loss(),
                p.bandwidth_estimate_bytes_per_second(), p.reason().c_str());
    for (const pb::OptionEstimate& o : p.options()) {
      std::printf("  option %-15s level=%2d rate=%.2f ttft=%.3fs loss=%.4f bytes=%llu\n",
                  FormName(o.form()), o.level(), o.compress_rate(), o.predicted_ttft_seconds(),
                  o.quality_loss(), static_cast<unsigned long long>(o.bytes()));
    }
  };
  cb.on_decision = [](const pb::ChunkDecision& d) {
    std::printf("chunk %u: %s level=%d measured=%.3g B/s estimate=%.3g B/s %s\n", d.chunk_index(),
                FormName(d.form()), d.level(), d.measured_bytes_per_second(),
                d.bandwidth_estimate_bytes_per_second(), d.reason().c_str());
  };
  bool in_answer = false;
  cb.on_token = [&in_answer](const pb::GeneratedToken& t) {
    if (!in_answer) std::printf("answer: ");
    in_answer = true;
    std::printf("%s", t.text().c_str());
    std::fflush(stdout);
  };
  absl::StatusOr<ctx::client::Answer> a = client->Query(req, cb);
  if (!a.ok()) return Fail(a.status());
  if (in_answer) std::printf("\n");
  const pb::QueryResult& r = a->result;
  const pb::StageTimings& t = r.timings();
  std::printf(
      "timings: ttft=%.3fs total=%.3fs fetch=%.3fs decode=%.3fs prefill=%.3fs "
      "compress=%.3fs queue=%.3fs\n",
      t.ttft_seconds(), t.total_seconds(), t.fetch_seconds(), t.decode_seconds(),
      t.prefill_seconds(), t.compress_seconds(), t.queue_seconds());
  for (const pb::ByteCount& b : r.bytes()) {
    std::printf("bytes: %s level=%d bytes=%llu chunks=%u\n", FormName(b.form()), b.level(),
                static_cast<unsigned long long>(b.bytes()), b.chunks());
  }
  std::printf("slo_met=%s fell_back=%s%s%s generated_tokens=%u endpoint=%s\n",
              r.slo_met() ? "true" : "false", r.fell_back() ? "true" : "false",
              r.fell_back() ? " reason=" : "", r.fallback_reason().c_str(), r.generated_tokens(),
              r.inference_endpoint().c_str());
  return 0;
}

int List() {
  auto client = Client();
  if (!client) return 2;
  absl::StatusOr<std::vector<pb::ContextInfo>> list = client->List();
  if (!list.ok()) return Fail(list.status());
  for (const pb::ContextInfo& c : *list) {
    std::printf("%s tokens=%u chunks=%u kv_ready=%s kv_bytes=%llu compressed=%s name=%s\n",
                c.context_id().c_str(), c.tokens(), c.chunks(), c.kv_ready() ? "true" : "false",
                static_cast<unsigned long long>(c.kv_bytes()),
                c.has_compressed() ? "true" : "false", c.name().c_str());
  }
  return 0;
}

int Delete(const std::string& id) {
  auto client = Client();
  if (!client) return 2;
  absl::StatusOr<bool> deleted = client->Delete(id);
  if (!deleted.ok()) return Fail(deleted.status());
  std::printf("%s %s\n", *deleted ? "deleted" : "not found:", id.c_str());
  return *deleted ? 0 : 1;
}

constexpr char kUsage[] =
    "usage: ctxctl health ADDRESS...\n"
    "       ctxctl [--controller=ADDR] [--api_key=K] register FILE [--name=N]\n"
    "       ctxctl [--controller=ADDR] [--api_key=K] query --context_id=ID --question=Q\n"
    "              [--slo=S] [--form=kv|text|ctext] [--level=N] [--max_tokens=N]\n"
    "       ctxctl [--controller=ADDR] [--api_key=K] list | delete ID\n";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string cmd = args.size() >= 2 ? args[1] : "";
  if (cmd == "health" && args.size() >= 3) {
    return Health(std::vector<std::string>(args.begin() + 2, args.end()));
  }
  if (cmd == "register" && args.size() == 3) return Register(args[2]);
  if (cmd == "query" && args.size() == 2) {
    if (absl::GetFlag(FLAGS_question).empty() ||
        (absl::GetFlag(FLAGS_context_id).empty() && absl::GetFlag(FLAGS_context_file).empty())) {
      std::fprintf(stderr, "ctxctl query: needs --question and --context_id (or --context_file)\n");
      return 2;
    }
    return Query();
  }
  if (cmd == "list" && args.size() == 2) return List();
  if (cmd == "delete" && args.size() == 3) return Delete(args[2]);
  std::fprintf(stderr, "%s", kUsage);
  return 2;
}
