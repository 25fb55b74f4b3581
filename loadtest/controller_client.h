// The QueryClient that talks to a real controller: Controller.Query over gRPC's callback
// API (one ClientReadReactor per query, no thread per query), plus the synchronous calls a
// run needs around the load (RegisterContext, kvcache GetCodecInfo).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ctxstream/v1/controller.grpc.pb.h"
#include "grpcpp/channel.h"
#include "loadtest/load_generator.h"
#include "nlohmann/json.hpp"

namespace ctx::loadtest {

// Fields every query of a run shares.
struct QueryTemplate {
  uint32_t max_tokens = 16;
  double slo_ttft_seconds = 0;  // 0 = none
  double max_quality_loss = 0;  // 0 = no floor
  ctxstream::v1::Form force_form = ctxstream::v1::FORM_UNSPECIFIED;
  int force_level = -1;
  ctxstream::v1::Objective objective = ctxstream::v1::OBJECTIVE_UNSPECIFIED;
  double deadline_seconds = 120;  // per query
  std::string api_key;            // sent as x-api-key when not empty
};

class ControllerClient : public QueryClient {
 public:
  ControllerClient(std::shared_ptr<grpc::Channel> channel, QueryTemplate tmpl);
  void StartQuery(const QuerySpec& spec, std::function<void(QueryRecord)> done) override;

  struct Registered {
    std::string context_id;
    uint32_t tokens = 0;
    uint32_t chunks = 0;
    bool kv_ready = false;
    std::string message;  // last progress message
  };
  // Whether the controller still knows `context_id` (GetContext; NOT_FOUND -> false).
  absl::StatusOr<bool> Exists(const std::string& context_id);
  // Registers `text` and waits for the final progress event.
  absl::StatusOr<Registered> Register(const std::string& text, const std::string& name,
                                      bool precompute_compressed, double timeout_seconds);

 private:
  std::unique_ptr<ctxstream::v1::Controller::Stub> stub_;
  QueryTemplate tmpl_;
};

// kvcache GetCodecInfo as JSON: {"levels":[{"level","bits_per_element","quality_loss"}],
// "quant8_bits_per_element", "quant8_quality_loss"}.
absl::StatusOr<nlohmann::json> FetchCodecInfo(const std::string& kvcache_address);

// "text" / "ctext" / "kv" for a Form.
std::string FormKind(ctxstream::v1::Form form);

}  // namespace ctx::loadtest
