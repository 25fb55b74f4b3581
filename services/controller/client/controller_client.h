// ControllerClient: the C++ client library for application backends (issue #6 item 6).
// A small synchronous wrapper around the generated Controller stub:
//
//   auto client = ctx::client::ControllerClient::Connect({.target = "127.0.0.1:50050",
//                                                         .api_key = "k1"});
//   auto reg = (*client)->Register(text, {.name = "doc"}, [](const auto& p) { ... });
//   auto ans = (*client)->Query(ctx::client::Ask(reg->context_id, "Question: ...\nAnswer:"));
//   ans->plan, ans->decisions, ans->answer, ans->result.timings() ...
//
// Every call carries the API key (x-api-key) and a deadline (ClientOptions; Query/Register
// can override it per call). Errors are absl::Status with the server's gRPC code (NOT_FOUND,
// UNAUTHENTICATED, DEADLINE_EXCEEDED, UNAVAILABLE ...) and a message naming the call.
// Thread-safe: one client may serve concurrent calls (gRPC stubs are).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ctxstream/v1/controller.grpc.pb.h"
#include "grpcpp/channel.h"

namespace ctx::client {

struct ClientOptions {
  std::string target = "127.0.0.1:50050";  // host:port or dns:///name:port
  std::string api_key;                     // sent as x-api-key; empty = anonymous
  double call_timeout_seconds = 10;        // Get / List / Delete
  double stream_timeout_seconds = 600;     // Register / Query (whole stream)
  // TLS. All empty and tls=false: the process's --client_tls_* flags (common/rpc/channel.h;
  // insecure unless set). tls=true or any file set: TLS with these PEM files (ca empty =
  // the system's roots; cert and key together for mutual TLS).
  bool tls = false;
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  std::string tls_server_name;  // override the name checked in the server's certificate
};

struct RegisterOptions {
  std::string name;
  bool precompute_compressed = false;
  float compress_rate = 0;     // 0 = the server's default (0.5)
  double timeout_seconds = 0;  // 0 = ClientOptions::stream_timeout_seconds
};

struct Registered {
  std::string context_id;
  uint32_t tokens = 0;
  uint32_t chunks = 0;
  bool kv_ready = false;  // false: registered but served as text (message says why)
  std::string message;    // the last progress message
};

// Everything a Query streams, collected.
struct Answer {
  ctxstream::v1::Plan plan;
  std::vector<ctxstream::v1::ChunkDecision> decisions;  // per-chunk re-plans, in order
  std::vector<ctxstream::v1::GeneratedToken> tokens;
  std::string answer;                 // concatenated token texts
  ctxstream::v1::QueryResult result;  // timings, bytes, fallback
};

// Optional callbacks while a query streams (called on the caller's thread, in order).
struct QueryCallbacks {
  std::function<void(const ctxstream::v1::Plan&)> on_plan;
  std::function<void(const ctxstream::v1::ChunkDecision&)> on_decision;
  std::function<void(const ctxstream::v1::GeneratedToken&)> on_token;
};

// A QueryRequest for a registered context with the server's defaults (choose the form and
// level; no SLO, no floor).
ctxstream::v1::QueryRequest Ask(const std::string& context_id, const std::string& question,
                                uint32_t max_tokens = 64);

class ControllerClient {
 public:
  // Builds the channel (TLS per options). Fails on unreadable PEM files.
  static absl::StatusOr<std::unique_ptr<ControllerClient>> Connect(ClientOptions options);
  // Over an existing channel (tests, shared channels); TLS fields of `options` are unused.
  ControllerClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options);

  // Registers `text`; `progress` sees every RegisterProgress event.
  absl::StatusOr<Registered> Register(
      const std::string& text, const RegisterOptions& options = {},
      const std::function<void(const ctxstream::v1::RegisterProgress&)>& progress = {});

  // Runs a query to the end. timeout_seconds 0 = ClientOptions::stream_timeout_seconds; the
  // deadline travels to the controller, which derives every outbound call's from it.
  absl::StatusOr<Answer> Query(const ctxstream::v1::QueryRequest& request,
                               const QueryCallbacks& callbacks = {}, double timeout_seconds = 0);

  absl::StatusOr<ctxstream::v1::ContextInfo> Get(const std::string& context_id);
  // All of the tenant's contexts (follows page tokens).
  absl::StatusOr<std::vector<ctxstream::v1::ContextInfo>> List();
  // true when it existed and was deleted.
  absl::StatusOr<bool> Delete(const std::string& context_id);

  const ClientOptions& options() const { return options_; }

 private:
  void Prepare(grpc::ClientContext* ctx, double timeout_seconds) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ctxstream::v1::Controller::Stub> stub_;
};

}  // namespace ctx::client
