#include "tests/support/test_cluster.h"

#include <catch2/catch.hpp>
#include <chrono>

#include "absl/status/status.h"
#include "common/rpc/channel.h"
#include "services/controller/client/controller_client.h"

namespace ctx::testing {
namespace {

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TestCluster::TestCluster(const ClusterOptions& options) {
  const std::string model = SourcePath("models/tiny-llama");
  inference = StartService("inference", Concat({"--model_dir=" + model, "--measure_speed=false"},
                                               options.inference_args));
  kvcache =
      StartService("kvcache", Concat({"--inference=" + inference.grpc_address, "--store=memory",
                                      "--codec_profile=" + model + "/kvcodec.profile"},
                                     options.kvcache_args));
  if (options.with_compressor) {
    compressor =
        StartService("compressor", Concat({"--model_dir=" + SourcePath("models/tiny-lingua2"),
                                           "--target_tokenizer=" + model + "/tokenizer.model"},
                                          options.compressor_args));
  }
  controller = StartService("controller", Concat({"--inference=" + inference.grpc_address,
                                                  "--kvcache=" + kvcache.grpc_address,
                                                  "--compressor=" + compressor.grpc_address},
                                                 options.controller_args));
  stub = ctxstream::v1::Controller::NewStub(*rpc::MakeChannel(controller.grpc_address));
}

absl::StatusOr<std::string> RegisterContext(const std::string& controller_address,
                                            const std::string& text, double timeout_seconds) {
  client::ClientOptions options;
  options.target = controller_address;
  options.stream_timeout_seconds = timeout_seconds;
  absl::StatusOr<std::unique_ptr<client::ControllerClient>> c =
      client::ControllerClient::Connect(options);
  if (!c.ok()) return c.status();
  absl::StatusOr<client::Registered> r = (*c)->Register(text);
  if (!r.ok()) return r.status();
  if (!r->kv_ready) {
    return absl::FailedPreconditionError("context " + r->context_id +
                                         " registered but its KV is not ready: " + r->message);
  }
  return r->context_id;
}

std::vector<int> PlanLevels(const ctxstream::v1::Plan& plan) {
  std::vector<int> v;
  for (const ctxstream::v1::ChunkPlan& c : plan.chunks())
    v.push_back(c.form() == ctxstream::v1::FORM_KV ? c.level() : -1);
  return v;
}

std::vector<int> ChunkLevels(const std::vector<ctxstream::v1::QueryEvent>& events,
                             std::vector<int> start) {
  for (const ctxstream::v1::QueryEvent& e : events) {
    if (!e.has_decision()) continue;
    const uint32_t i = e.decision().chunk_index();
    if (start.size() <= i) start.resize(i + 1, -2);
    start[i] = e.decision().form() == ctxstream::v1::FORM_KV ? e.decision().level() : -1;
  }
  return start;
}

std::string JoinLevels(const std::vector<int>& levels) {
  std::string s;
  for (int x : levels) s += std::to_string(x) + " ";
  return s;
}

grpc::Status ReadQuery(ctxstream::v1::Controller::Stub& stub, grpc::ClientContext* ctx,
                       const ctxstream::v1::QueryRequest& req,
                       std::vector<ctxstream::v1::QueryEvent>* events) {
  if (ctx->deadline() == std::chrono::system_clock::time_point::max()) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(240));
  }
  auto reader = stub.Query(ctx, req);
  ctxstream::v1::QueryEvent e;
  while (reader->Read(&e)) events->push_back(e);
  return reader->Finish();
}

std::vector<ctxstream::v1::QueryEvent> QueryOk(ctxstream::v1::Controller::Stub& stub,
                                               const ctxstream::v1::QueryRequest& req,
                                               grpc::ClientContext* ctx) {
  grpc::ClientContext own;
  std::vector<ctxstream::v1::QueryEvent> events;
  const grpc::Status s = ReadQuery(stub, ctx != nullptr ? ctx : &own, req, &events);
  INFO(s.error_message());
  REQUIRE(s.ok());
  REQUIRE(events.size() >= 3);
  REQUIRE(events.front().has_plan());
  REQUIRE(events.back().has_result());
  return events;
}

}  // namespace ctx::testing
