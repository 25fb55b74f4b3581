// examples/python/backend.py (Debian's python3-grpcio, stubs generated from proto/ into the
// build dir) against real inference, kvcache and controller binaries.
// Run alone with:  ./build/tests/controller/test_controller "[python]"
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"

namespace ctx::testing {
namespace {

TEST_CASE("the Python example backend registers, asks, lists and deletes",
          "[integration][python]") {
  const std::string stubs = std::string(CTX_BINARY_DIR) + "/examples/python/gen";
  REQUIRE(std::filesystem::exists(stubs + "/ctxstream/v1/controller_pb2_grpc.py"));
  const std::string model = SourcePath("models/tiny-llama");
  RunningService inference = StartService("inference", {"--model_dir=" + model});
  RunningService kvcache =
      StartService("kvcache", {"--inference=" + inference.grpc_address, "--store=memory",
                               "--codec_profile=" + model + "/kvcodec.profile"});
  RunningService controller = StartService(
      "controller", {"--inference=" + inference.grpc_address, "--kvcache=" + kvcache.grpc_address,
                     "--compressor=", "--api_keys=pykey:pytenant", "--allow_anonymous=false"});
  ChildProcess py({"/usr/bin/python3",
                   SourcePath("examples/python/backend.py"),
                   "--stubs",
                   stubs,
                   "--controller",
                   controller.grpc_address,
                   "--api-key",
                   "pykey",
                   "--document",
                   SourcePath("DESIGN.md"),
                   "--max-chars",
                   "1500",
                   "--question",
                   "\nQuestion: which services does the cluster run?\nAnswer:",
                   "--max-tokens",
                   "4",
                   "--slo",
                   "0.5",
                   "--objective",
                   "fastest"});
  std::vector<std::string> lines;
  while (auto line = py.ReadStdoutLine(std::chrono::seconds(120))) lines.push_back(*line);
  const std::optional<int> rc = py.WaitExit(std::chrono::seconds(10));
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  INFO("stdout:\n" << out << "stderr:\n" << py.DrainStderr(std::chrono::seconds(1)));
  REQUIRE(rc.has_value());
  REQUIRE(*rc == 0);
  REQUIRE(!lines.empty());
  const nlohmann::json summary = nlohmann::json::parse(lines.back());
  CHECK(summary["context_id"].get<std::string>().size() == 32);
  CHECK(summary["kv_ready"].get<bool>());
  CHECK(summary["tokens"].get<int>() > 100);
  CHECK(summary["generated_tokens"].get<int>() >= 1);  // up to 4 (EOS may end it early)
  CHECK(!summary["answer"].get<std::string>().empty());
  CHECK(summary["ttft_s"].get<double>() > 0);
  CHECK(summary["listed"].get<bool>());
  CHECK(summary["deleted"].get<bool>());
  CHECK(out.find("register ") != std::string::npos);  // progress was streamed
  CHECK(out.find("plan: ") != std::string::npos);

  // A wrong key is refused with the server's code, exit status 1.
  ChildProcess bad({"/usr/bin/python3", SourcePath("examples/python/backend.py"), "--stubs", stubs,
                    "--controller", controller.grpc_address, "--api-key", "wrong", "--document",
                    SourcePath("DESIGN.md"), "--max-chars", "200", "--question", "q"});
  while (bad.ReadStdoutLine(std::chrono::seconds(60))) {
  }
  CHECK(bad.WaitExit(std::chrono::seconds(10)) == 1);
  CHECK(bad.DrainStderr(std::chrono::seconds(1)).find("UNAUTHENTICATED") != std::string::npos);
}

}  // namespace
}  // namespace ctx::testing
