#include "services/controller/client/controller_client.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rpc/channel.h"
#include "common/rpc/tls.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace ctx::client {
namespace {

namespace pb = ctxstream::v1;

// A failed call as absl::Status: same code, message prefixed with the call's name.
absl::Status CallError(const char* call, const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("Controller.", call, ": ", s.error_message()));
}

}  // namespace

pb::QueryRequest Ask(const std::string& context_id, const std::string& question,
                     uint32_t max_tokens) {
  pb::QueryRequest q;
  q.set_context_id(context_id);
  q.set_question(question);
  q.set_max_tokens(max_tokens);
  q.set_force_level(-1);
  return q;
}

absl::StatusOr<std::unique_ptr<ControllerClient>> ControllerClient::Connect(ClientOptions options) {
  std::shared_ptr<grpc::Channel> channel;
  const bool own_tls = options.tls || !options.tls_ca_file.empty() ||
                       !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (!own_tls) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = rpc::MakeChannel(options.target);
    if (!ch.ok()) return ch.status();
    channel = *std::move(ch);
  } else {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      absl::StatusOr<std::string> roots = rpc::ReadPemFile(options.tls_ca_file, "tls_ca_file");
      if (!roots.ok()) return roots.status();
      ssl.pem_root_certs = *std::move(roots);
    }
    if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
      return absl::InvalidArgumentError("tls_cert_file and tls_key_file must be given together");
    }
    if (!options.tls_cert_file.empty()) {
      absl::StatusOr<std::string> cert = rpc::ReadPemFile(options.tls_cert_file, "tls_cert_file");
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = rpc::ReadPemFile(options.tls_key_file, "tls_key_file");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(cert);
      ssl.pem_private_key = *std::move(key);
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
    channel = grpc::CreateCustomChannel(options.target, grpc::SslCredentials(ssl), args);
  }
  return std::make_unique<ControllerClient>(std::move(channel), std::move(options));
}

ControllerClient::ControllerClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(pb::Controller::NewStub(channel_)) {}

void ControllerClient::Prepare(grpc::ClientContext* ctx, double timeout_seconds) const {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::duration<double>(timeout_seconds)));
  if (!options_.api_key.empty()) ctx->AddMetadata("x-api-key", options_.api_key);
}

absl::StatusOr<Registered> ControllerClient::Register(
    const std::string& text, const RegisterOptions& options,
    const std::function<void(const pb::RegisterProgress&)>& progress) {
  pb::RegisterContextRequest req;
  req.set_text(text);
  req.set_name(options.name);
  req.set_precompute_compressed(options.precompute_compressed);
  req.set_compress_rate(options.compress_rate);
  grpc::ClientContext ctx;
  Prepare(&ctx,
          options.timeout_seconds > 0 ? options.timeout_seconds : options_.stream_timeout_seconds);
  auto reader = stub_->RegisterContext(&ctx, req);
  pb::RegisterProgress p;
  Registered out;
  while (reader->Read(&p)) {
    if (progress) progress(p);
    out.context_id = p.context_id();
    out.tokens = p.tokens();
    out.chunks = p.chunks_total();
    out.kv_ready = p.ready();
    out.message = p.message();
  }
  const grpc::Status s = reader->Finish();
  if (!s.ok()) return CallError("RegisterContext", s);
  if (out.context_id.empty()) {
    return absl::InternalError("Controller.RegisterContext: the stream ended without a context id");
  }
  return out;
}

absl::StatusOr<Answer> ControllerClient::Query(const pb::QueryRequest& request,
                                               const QueryCallbacks& callbacks,
                                               double timeout_seconds) {
  grpc::ClientContext ctx;
  Prepare(&ctx, timeout_seconds > 0 ? timeout_seconds : options_.stream_timeout_seconds);
  auto reader = stub_->Query(&ctx, request);
  pb::QueryEvent e;
  Answer out;
  bool have_plan = false, have_result = false;
  while (reader->Read(&e)) {
    switch (e.event_case()) {
      case pb::QueryEvent::kPlan:
        out.plan = e.plan();
        have_plan = true;
        if (callbacks.on_plan) callbacks.on_plan(out.plan);
        break;
      case pb::QueryEvent::kDecision:
        out.decisions.push_back(e.decision());
        if (callbacks.on_decision) callbacks.on_decision(out.decisions.back());
        break;
      case pb::QueryEvent::kToken:
        out.tokens.push_back(e.token());
        out.answer += e.token().text();
        if (callbacks.on_token) callbacks.on_token(out.tokens.back());
        break;
      case pb::QueryEvent::kResult:
        out.result = e.result();
        have_result = true;
        break;
      default:
        break;
    }
  }
  const grpc::Status s = reader->Finish();
  if (!s.ok()) return CallError("Query", s);
  if (!have_plan || !have_result) {
    return absl::InternalError("Controller.Query: the stream ended OK without a plan and a result");
  }
  return out;
}

absl::StatusOr<pb::ContextInfo> ControllerClient::Get(const std::string& context_id) {
  grpc::ClientContext ctx;
  Prepare(&ctx, options_.call_timeout_seconds);
  pb::GetContextRequest req;
  req.set_context_id(context_id);
  pb::ContextInfo info;
  const grpc::Status s = stub_->GetContext(&ctx, req, &info);
  if (!s.ok()) return CallError("GetContext", s);
  return info;
}

absl::StatusOr<std::vector<pb::ContextInfo>> ControllerClient::List() {
  std::vector<pb::ContextInfo> out;
  pb::ListContextsRequest req;
  for (;;) {
    grpc::ClientContext ctx;
    Prepare(&ctx, options_.call_timeout_seconds);
    pb::ListContextsResponse resp;
    const grpc::Status s = stub_->ListContexts(&ctx, req, &resp);
    if (!s.ok()) return CallError("ListContexts", s);
    for (pb::ContextInfo& c : *resp.mutable_contexts()) out.push_back(std::move(c));
    if (resp.next_page_token().empty()) return out;
    req.set_page_token(resp.next_page_token());
  }
}

absl::StatusOr<bool> ControllerClient::Delete(const std::string& context_id) {
  grpc::ClientContext ctx;
  Prepare(&ctx, options_.call_timeout_seconds);
  pb::ControllerDeleteContextRequest req;
  req.set_context_id(context_id);
  pb::ControllerDeleteContextResponse resp;
  const grpc::Status s = stub_->DeleteContext(&ctx, req, &resp);
  if (!s.ok()) return CallError("DeleteContext", s);
  return resp.deleted();
}

}  // namespace ctx::client
