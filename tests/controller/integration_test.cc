// All four real service binaries on 127.0.0.1, a real document registered and queried as
// text, as KV (forced) and adaptively; failures of kvcache and of an inference replica.
// Run alone with:  ./build/tests/controller/test_controller "[integration]"
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/rpc/channel.h"
#include "ctxstream/v1/controller.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/test_cluster.h"

namespace ctx::testing {
namespace {

namespace pb = ctxstream::v1;

struct Cluster {
  // `second_inference`: also start a second inference replica (listed first, so that a test
  // can kill it and watch the controller retry on the other).
  explicit Cluster(bool second_inference = false) {
    const std::string model = SourcePath("models/tiny-llama");
    const std::string profile = model + "/kvcodec.profile";
    inference = StartService("inference", {"--model_dir=" + model});
    std::string inference_list = inference.grpc_address;
    if (second_inference) {
      inference2 = StartService("inference", {"--model_dir=" + model});
      inference_list = inference2.grpc_address + "," + inference_list;
    }
    std::vector<std::string> kv_args = {"--inference=" + inference.grpc_address, "--store=memory"};
    kv_args.push_back("--codec_profile=" +
                      (std::filesystem::exists(profile) ? profile : std::string()));
    kvcache = StartService("kvcache", kv_args);
    compressor = StartService(
        "compressor", {"--model_dir=" + SourcePath("models/tiny-lingua2"),
                       "--target_tokenizer=" + SourcePath("models/tiny-llama/tokenizer.model")});
    controller = StartService(
        "controller", {"--inference=" + inference.grpc_address, "--kvcache=" + kvcache.grpc_address,
                       "--compressor=" + compressor.grpc_address});
    stub = pb::Controller::NewStub(*rpc::MakeChannel(controller.grpc_address));
  }

  std::string Register(const std::string& text) const {
    const absl::StatusOr<std::string> id = RegisterContext(controller.grpc_address, text);
    INFO(id.status().ToString());
    REQUIRE(id.ok());
    return *id;
  }

  std::vector<pb::QueryEvent> Query(const pb::QueryRequest& req) { return QueryOk(*stub, req); }

  RunningService inference, inference2, kvcache, compressor, controller;
  std::unique_ptr<pb::Controller::Stub> stub;
};

std::vector<int32_t> TokenIds(const std::vector<pb::QueryEvent>& events) {
  std::vector<int32_t> ids;
  for (const pb::QueryEvent& e : events) {
    if (e.has_token()) ids.push_back(e.token().id());
  }
  return ids;
}

// A real document: the first ~600 tokens of the design doc.
std::string Document() {
  std::ifstream in(SourcePath("DESIGN.md"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str().substr(0, 2500);
}

TEST_CASE("register a document and query it as text, KV and adaptively", "[integration]") {
  Cluster c;
  const std::string id = c.Register(Document());

  pb::QueryRequest q;
  q.set_context_id(id);
  q.set_question("\nQuestion: which services does the cluster run?\nAnswer:");
  q.set_max_tokens(8);
  q.set_force_level(-1);

  pb::QueryRequest text_q = q;
  text_q.set_force_form(pb::FORM_TEXT);
  const auto text = c.Query(text_q);
  CHECK(text.front().plan().form() == pb::FORM_TEXT);
  CHECK(!text.back().result().answer().empty());
  CHECK(!text.back().result().fell_back());
  const std::vector<int32_t> text_ids = TokenIds(text);
  REQUIRE(text_ids.size() >= 4);

  pb::QueryRequest kv_q = q;
  kv_q.set_force_form(pb::FORM_KV);
  kv_q.set_force_level(0);  // the near-lossless level
  const auto kv = c.Query(kv_q);
  CHECK(kv.front().plan().form() == pb::FORM_KV);
  const pb::QueryResult& kr = kv.back().result();
  CHECK(!kr.answer().empty());
  CHECK(!kr.fell_back());
  uint64_t kv_bytes = 0;
  for (const pb::ByteCount& b : kr.bytes()) kv_bytes += b.form() == pb::FORM_KV ? b.bytes() : 0;
  CHECK(kv_bytes > 0);
  CHECK(kr.timings().fetch_seconds() > 0);
  // Greedy decoding from level-0 KV starts like decoding from text.
  const std::vector<int32_t> kv_ids = TokenIds(kv);
  REQUIRE(kv_ids.size() >= 4);
  CHECK(std::vector<int32_t>(kv_ids.begin(), kv_ids.begin() + 4) ==
        std::vector<int32_t>(text_ids.begin(), text_ids.begin() + 4));

  pb::QueryRequest adaptive = q;
  adaptive.set_slo_ttft_seconds(0.5);
  adaptive.set_adapt_per_chunk(true);
  const auto ad = c.Query(adaptive);
  CHECK(ad.front().plan().options_size() >= 2);
  CHECK(!ad.back().result().answer().empty());
  CHECK(ad.back().result().inference_endpoint() == c.inference.grpc_address);
}

TEST_CASE("kvcache killed after registration: the query is answered from text and says so",
          "[integration]") {
  Cluster c;
  const std::string id = c.Register(Document());
  c.kvcache.process->Signal(SIGKILL);
  c.kvcache.process->WaitExit(std::chrono::seconds(5));
  pb::QueryRequest q;
  q.set_context_id(id);
  q.set_question("\nQuestion: what is the controller?\nAnswer:");
  q.set_max_tokens(4);
  q.set_force_level(-1);
  q.set_slo_ttft_seconds(0.05);  // would pick KV if kvcache were there
  const auto ev = c.Query(q);
  CHECK(ev.front().plan().form() != pb::FORM_KV);
  CHECK(ev.front().plan().reason().find("kvcache unreachable") != std::string::npos);
  const pb::QueryResult& r = ev.back().result();
  CHECK(!r.answer().empty());
  CHECK(r.fell_back());
  CHECK(r.fallback_reason().find("kvcache unreachable") != std::string::npos);
}

TEST_CASE("an inference replica killed before the query: retried on the other", "[integration]") {
  Cluster c(/*second_inference=*/true);
  const std::string id = c.Register(Document());
  c.inference2.process->Signal(SIGKILL);
  c.inference2.process->WaitExit(std::chrono::seconds(5));
  pb::QueryRequest q;
  q.set_context_id(id);
  q.set_question("\nQuestion: what is the controller?\nAnswer:");
  q.set_max_tokens(4);
  q.set_force_level(-1);
  for (int i = 0; i < 2; ++i) {  // whichever replica the first pick lands on
    const auto ev = c.Query(q);
    CHECK(!ev.back().result().answer().empty());
    CHECK(ev.back().result().inference_endpoint() == c.inference.grpc_address);
  }
}

}  // namespace
}  // namespace ctx::testing
