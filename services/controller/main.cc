// ctxstream-controller: see README.md in this folder.
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "common/rpc/server.h"
#include "services/controller/api_keys.h"
#include "services/controller/context_registry.h"
#include "services/controller/controller_service.h"
#include "services/controller/query_engine.h"

ABSL_FLAG(std::string, inference, "127.0.0.1:50051",
          "Inference replicas: comma-separated host:port or dns:///name:port entries.");
ABSL_FLAG(std::string, kvcache, "127.0.0.1:50052",
          "kvcache replicas (comma-separated; empty = serve everything as text).");
ABSL_FLAG(std::string, compressor, "127.0.0.1:50053",
          "Compressor endpoint (empty = no compressed text).");
ABSL_FLAG(std::string, api_keys_file, "", "File of 'KEY TENANT' lines.");
ABSL_FLAG(std::string, api_keys, "", "Comma list of KEY:TENANT.");
ABSL_FLAG(bool, allow_anonymous, true,
          "Requests without x-api-key act as tenant 'default' (unknown keys are always refused).");
ABSL_FLAG(std::string, state_dir, "",
          "Directory for the context registry (JSON per context); empty = in memory only.");
ABSL_FLAG(uint32_t, chunk_tokens, 256, "Tokens per KV chunk asked of kvcache.");
ABSL_FLAG(bool, hybrid, true,
          "Consider hybrid plans: the context's first chunks prefilled from text on the inference "
          "node while the KV of the rest streams from kvcache.");
ABSL_FLAG(bool, fastest_keeps_pace, false,
          "OBJECTIVE_FASTEST_WITHIN_FLOOR: give the receiver the plan's predicted TTFT as its "
          "budget (it upgrades quality where that seems to fit) instead of 'as soon as possible'.");
ABSL_FLAG(double, min_adapt_transfer_seconds, 0.05,
          "With --adapt: re-plan per chunk only when the plan's predicted KV transfer takes at "
          "least this long (shorter transfers finish before a re-plan could act).");
ABSL_FLAG(bool, adapt, true, "Re-plan KV levels per chunk by default (QueryRequest can ask too).");
ABSL_FLAG(double, query_timeout_seconds, 120, "Deadline of a query when the client sets none.");
ABSL_FLAG(double, cold_start_bandwidth, 12.5e6,
          "Bandwidth estimate (bytes/s) of a kvcache->inference link before its first fetch.");
ABSL_FLAG(double, bandwidth_alpha, 0.5, "EWMA weight of the newest fetch throughput.");
ABSL_FLAG(double, compress_rate, 0.5, "LLMLingua-2 rate for compressed text on the query path.");
ABSL_FLAG(double, compress_loss, 0.225,
          "Quality loss (relative perplexity increase) assumed for LLMLingua-2 compressed text: "
          "measured 0.225 at rate 0.5 (mean continuation PPL 22.95 vs 18.74 with the full "
          "context, tiny-lingua2 + tiny-llama, 20 docs; docs/bench-pytorch.md, lingua_quality).");
ABSL_FLAG(bool, retry_inference, true, "Retry an UNAVAILABLE inference replica once elsewhere.");
ABSL_FLAG(uint32_t, workers, 16, "Requests orchestrated concurrently.");

int main(int argc, char** argv) {
  ctx::rpc::ServerMain server_main("controller", argc, argv);
  using namespace ctx::controller;

  absl::StatusOr<ApiKeys> keys =
      ApiKeys::Load(absl::GetFlag(FLAGS_api_keys_file), absl::GetFlag(FLAGS_api_keys),
                    absl::GetFlag(FLAGS_allow_anonymous));
  if (!keys.ok()) return server_main.Fail(keys.status());
  absl::StatusOr<std::unique_ptr<ContextRegistry>> registry =
      ContextRegistry::Open(absl::GetFlag(FLAGS_state_dir));
  if (!registry.ok()) return server_main.Fail(registry.status());

  auto inference = InferenceSet::Connect<ctxstream::v1::Inference>(absl::GetFlag(FLAGS_inference));
  if (!inference.ok()) return server_main.Fail(inference.status());
  if ((*inference)->empty()) {
    return server_main.Fail(absl::InvalidArgumentError("--inference: no endpoint given"));
  }
  auto kvcache = KvCacheSet::Connect<ctxstream::v1::KvCache>(absl::GetFlag(FLAGS_kvcache));
  if (!kvcache.ok()) return server_main.Fail(kvcache.status());
  std::unique_ptr<ctxstream::v1::Compressor::StubInterface> compressor;
  if (const std::string c = absl::GetFlag(FLAGS_compressor); !c.empty()) {
    auto ch = ctx::rpc::MakeChannel(c);
    if (!ch.ok()) return server_main.Fail(ch.status());
    compressor = ctxstream::v1::Compressor::NewStub(*ch);
  }

  EngineOptions opt;
  opt.chunk_tokens = absl::GetFlag(FLAGS_chunk_tokens);
  opt.adapt = absl::GetFlag(FLAGS_adapt);
  opt.hybrid = absl::GetFlag(FLAGS_hybrid);
  opt.min_adapt_transfer_s = absl::GetFlag(FLAGS_min_adapt_transfer_seconds);
  opt.fastest_keeps_pace = absl::GetFlag(FLAGS_fastest_keeps_pace);
  opt.default_timeout_s = absl::GetFlag(FLAGS_query_timeout_seconds);
  opt.cold_start_bps = absl::GetFlag(FLAGS_cold_start_bandwidth);
  opt.bandwidth_alpha = absl::GetFlag(FLAGS_bandwidth_alpha);
  opt.compress_rate = absl::GetFlag(FLAGS_compress_rate);
  opt.compress_loss = absl::GetFlag(FLAGS_compress_loss);
  opt.retry_inference = absl::GetFlag(FLAGS_retry_inference);
  if (opt.chunk_tokens == 0) {
    return server_main.Fail(absl::InvalidArgumentError("--chunk_tokens must be > 0"));
  }
  QueryEngine engine({inference->get(), kvcache->get(), compressor.get()}, registry->get(), opt);
  ControllerService service(&engine, *std::move(keys), absl::GetFlag(FLAGS_workers));
  return server_main.Serve({&service});
}
