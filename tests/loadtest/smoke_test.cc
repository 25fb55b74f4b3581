// Smoke scenario: the four real services on 127.0.0.1 (kvcache's egress limited), ctxload
// registering one document and running each strategy for a few queries, then the JSON
// summaries' invariants: counts add up, no errors at low load, forced strategies are
// honoured, and the adaptive controller is never worse than the worst fixed strategy (mean
// TTFT). About 10 s. Tagged [needs-services] (it starts build/bin/ctxstream-* and ctxload):
//   ./build/tests/loadtest/test_loadtest "[needs-services]"     only this
//   ./build/tests/loadtest/test_loadtest "~[needs-services]"    everything else
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"

namespace ctx::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

nlohmann::json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

// Runs build/bin/ctxload with `args`; REQUIREs exit 0 and returns its stdout.
std::string RunCtxload(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinaryPath("ctxload"), "--quiet"};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess p(argv);
  std::string out;
  while (auto line = p.ReadStdoutLine(300s)) out += *line + "\n";
  const auto code = p.WaitExit(300s);
  const std::string err = p.DrainStderr(1s);
  INFO("ctxload stdout: " << out << "\nstderr: " << err);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  return out;
}

void CheckCountsAddUp(const nlohmann::json& s) {
  INFO(s.dump(2));
  const uint64_t sent = s["sent"], ok = s["ok"], failed = s["failed"];
  CHECK(ok + failed == sent);
  uint64_t errors = 0;
  for (const auto& [code, n] : s["errors_by_code"].items()) errors += n.get<uint64_t>();
  CHECK(errors == failed);
  double mix = 0;
  for (const auto& [label, n] : s["decision_mix"].items()) mix += n.get<double>();
  CHECK(mix == Approx(static_cast<double>(ok)));
  uint64_t timeline = 0;
  for (const auto& b : s["timeline"]) timeline += b["n"].get<uint64_t>();
  CHECK(timeline == ok);
  CHECK(s["ttft_s"]["p50"].get<double>() <= s["ttft_s"]["p99"].get<double>());
}

}  // namespace

TEST_CASE("smoke: ctxload against the real services, every strategy", "[needs-services]") {
  const fs::path dir = fs::temp_directory_path() / ("ctxload_smoke_" + std::to_string(getpid()));
  fs::create_directories(dir / "docs");
  fs::copy_file(SourcePath("loadtest/data/docs/14_git-doc_gitcli.txt"), dir / "docs/doc.txt");

  const std::string model = SourcePath("models/tiny-llama");
  const std::string profile = model + "/kvcodec.profile";
  const std::string profile_flag =
      "--codec_profile=" + (fs::exists(profile) ? profile : std::string());
  // Inference needs the profile too: it decodes the chunks kvcache encoded with its tables.
  RunningService inference = StartService("inference", {"--model_dir=" + model, profile_flag});
  // 4 MB/s = 32 Mbit/s per Fetch stream: KV beats text for this document on this machine,
  // and the smallest level beats the largest.
  RunningService kvcache =
      StartService("kvcache", {"--inference=" + inference.grpc_address, "--store=memory",
                               "--egress_bytes_per_second=4000000", profile_flag});
  RunningService compressor = StartService(
      "compressor", {"--model_dir=" + SourcePath("models/tiny-lingua2"),
                     "--target_tokenizer=" + SourcePath("models/tiny-llama/tokenizer.model")});
  RunningService controller = StartService(
      "controller", {"--inference=" + inference.grpc_address, "--kvcache=" + kvcache.grpc_address,
                     "--compressor=" + compressor.grpc_address});

  RunCtxload({"--codec_info_from=" + kvcache.grpc_address,
              "--codec_info_out=" + (dir / "codec.json").string()});
  const nlohmann::json codec = ReadJson(dir / "codec.json");
  REQUIRE(codec["levels"].size() >= 1);
  const int last_level = codec["levels"].back()["level"];

  const std::vector<std::string> common = {
      "--controller=" + controller.grpc_address, "--docs=" + (dir / "docs").string(),
      "--questions=" + SourcePath("loadtest/data/questions.txt"),
      "--contexts_file=" + (dir / "contexts").string(), "--max_tokens=4", "--duration_seconds=120",
      // Without an SLO the controller picks the best quality (text, loss 0) whatever it
      // costs; with a tight one it must pick the fastest option it predicts.
      "--slo=0.2"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), common.begin(), common.end());
    return extra;
  };
  RunCtxload(with({"--register_only"}));

  struct Strategy {
    std::string name;
    std::vector<std::string> flags;
    std::string expect_form;  // plan form every query must have ("" = any)
  };
  const std::vector<Strategy> strategies = {
      {"text", {"--force_form=text"}, "text"},
      {"ctext", {"--force_form=ctext"}, "ctext"},
      {"kv0", {"--force_form=kv", "--force_level=0"}, "kv"},
      {"kv" + std::to_string(last_level),
       {"--force_form=kv", "--force_level=" + std::to_string(last_level)},
       "kv"},
      {"adaptive", {"--force_form=auto", "--warmup_queries=1"}, ""},
  };
  std::map<std::string, double> mean_ttft;
  for (const Strategy& st : strategies) {
    std::vector<std::string> args = with(st.flags);
    const fs::path summary = dir / (st.name + ".json");
    args.insert(args.end(), {"--concurrency=1", "--queries=3", "--label=" + st.name,
                             "--summary=" + summary.string(),
                             "--records=" + (dir / (st.name + ".jsonl")).string()});
    RunCtxload(args);
    const nlohmann::json s = ReadJson(summary);
    INFO(st.name << ": " << s.dump(2));
    CheckCountsAddUp(s);
    CHECK(s["sent"] == 3);
    CHECK(s["failed"] == 0);     // low load: no errors
    CHECK(s["fell_back"] == 0);  // KV really delivered (e.g. inference has the profile)
    if (!st.expect_form.empty()) CHECK(s["plan_forms"][st.expect_form] == 3);
    mean_ttft[st.name] = s["ttft_s"]["mean"];
    // One JSON record per query.
    std::ifstream records(dir / (st.name + ".jsonl"));
    int lines = 0;
    for (std::string line; std::getline(records, line);) {
      const auto r = nlohmann::json::parse(line);
      CHECK(r["code"] == 0);
      CHECK(r["ttft_s"].get<double>() > 0);
      ++lines;
    }
    CHECK(lines == 3);
  }
  double worst_fixed = 0;
  for (const auto& [name, t] : mean_ttft) {
    if (name != "adaptive") worst_fixed = std::max(worst_fixed, t);
  }
  INFO("mean TTFT by strategy: " << nlohmann::json(mean_ttft).dump());
  CHECK(mean_ttft["adaptive"] <= worst_fixed);

  // Open loop at a low rate: counts add up, no errors.
  const fs::path open_summary = dir / "open.json";
  RunCtxload(with({"--rate=1", "--queries=3", "--seed=3", "--summary=" + open_summary.string()}));
  const nlohmann::json o = ReadJson(open_summary);
  CheckCountsAddUp(o);
  CHECK(o["mode"] == "open");
  CHECK(o["sent"] == 3);
  CHECK(o["failed"] == 0);

  for (RunningService* svc : {&controller, &compressor, &kvcache, &inference}) {
    svc->process->Signal(SIGTERM);
    svc->process->WaitExit(10s);
  }
  fs::remove_all(dir);
}

}  // namespace ctx::testing
