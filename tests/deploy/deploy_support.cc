#include "tests/deploy/deploy_support.h"

#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "common/obs/metrics.h"
#include "common/obs/rpc_metrics.h"
#include "common/obs/service_metrics.h"
#include "prometheus/text_serializer.h"
#include "tests/support/child_process.h"

namespace ctx::testing {

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  const std::string full = "( " + command + " ) </dev/null 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed: " + command);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

bool HaveTool(const std::string& tool) {
  return RunCommand("command -v " + ShellQuote(tool)).exit_code == 0;
}

std::string ReadFileOrThrow(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string BinaryPathForDeploy(const std::string& name) {
  return std::string(CTX_BINARY_DIR) + "/bin/" + name;
}

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q.push_back(c);
    }
  }
  return q + "'";
}

void RecordOneOfEverything() {
  static bool done = false;  // once per process, so tests can expect exact counts
  if (done) return;
  done = true;
  auto& c = obs::ControllerMetrics::Get();
  c.ObserveTtft(obs::Form::kKv, 0.42);
  c.ObservePredictedTtft(obs::Form::kKv, 0.40, 0.42);
  c.ObserveStage(obs::Stage::kFetch, obs::Form::kKv, 0.2);
  c.CountQuery(obs::Form::kKv, /*slo_violated=*/true);
  c.CountDecision(obs::Form::kKv, 2, /*replan=*/false);
  c.SetBandwidthEstimate("kvcache-0>inference-0", 125e6);
  obs::AddContextBytes(obs::Form::kText, -1, 4096);
  auto& i = obs::InferenceMetrics::Get();
  i.AddPrefillTokens(obs::Form::kText, 512, 0.8);
  i.AddDecodeTokens(16);
  i.ObserveTtft(obs::Form::kText, 0.9);
  i.ObserveFetchChunk("kvcache-0>inference-0", 2, 1 << 20, 0.01);
  i.ObserveCodecDecode(2, 1 << 20, 8 << 20, 0.004);
  auto& k = obs::KvCacheMetrics::Get();
  k.IngestStarted();
  k.AddIngestTokens(2048);
  k.SetIngestPendingChunks(3);
  k.ObserveCodecEncode(2, 8 << 20, 1 << 20, 0.02);
  k.IngestFinished(true, 1.5);
  k.ObserveFetchChunk(2, 1 << 20);
  k.CountStoreLookup("memory", true);
  k.CountStoreLookup("memory", false);
  k.CountStoreEviction("memory");
  k.SetStoreSize("memory", 3 << 20, 3);
  k.SetStoreCapacity("memory", 64 << 20);
  obs::CompressorMetrics::Get().ObserveCompression(1000, 300, 0.05);
}

std::string ServiceExposition() {
  obs::MakeRpcMetricsInterceptor();
  obs::ControllerMetrics::Get();
  obs::InferenceMetrics::Get();
  obs::KvCacheMetrics::Get();
  obs::CompressorMetrics::Get();
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, obs::Metrics().Collect());
  return out.str();
}

std::set<std::string> ExportedFamilyNames() {
  ServiceExposition();
  std::set<std::string> names;
  for (const auto& family : obs::Metrics().Collect()) names.insert(family.name);
  return names;
}

std::set<std::string> SampleNamesOf(const std::string& exposition) {
  std::set<std::string> names;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    std::istringstream fields(line.substr(7));
    std::string name;
    std::string type;
    fields >> name >> type;
    names.insert(name);
    if (type == "histogram") {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) names.insert(name + suffix);
    }
  }
  return names;
}

const std::map<std::string, std::string>& ScrapeLiveServices() {
  static const auto* scraped = [] {
    auto* out = new std::map<std::string, std::string>();
    for (const char* name : {"controller", "inference", "kvcache", "compressor"}) {
      RunningService svc = StartService(name, {});
      const auto health = RunCommand(ShellQuote(BinaryPathForDeploy("ctxctl")) + " health " +
                                     ShellQuote(svc.grpc_address));
      if (health.exit_code != 0) {
        throw std::runtime_error(std::string("ctxctl health on ") + name + ": " + health.output);
      }
      (*out)[name] = HttpGet(svc.metrics_address, "/metrics");
      svc.process->Signal(SIGTERM);
      svc.process->WaitExit(std::chrono::seconds(10));
    }
    return out;
  }();
  return *scraped;
}

std::set<std::string> ExportedSampleNames() {
  RecordOneOfEverything();  // series keyed by level, link or backend appear on first use
  std::set<std::string> names = SampleNamesOf(ServiceExposition());
  for (const auto& [service, text] : ScrapeLiveServices()) {
    for (const auto& n : SampleNamesOf(text)) names.insert(n);
  }
  return names;
}

std::set<std::string> MetricIdentifiers(const std::string& text) {
  static const std::regex kName("ctxstream_[a-z0-9_]+");
  std::set<std::string> names;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kName);
       it != std::sregex_iterator(); ++it) {
    names.insert(it->str());
  }
  return names;
}

}  // namespace ctx::testing
