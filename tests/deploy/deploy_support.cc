#include "tests/deploy/deploy_support.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "common/obs/metrics.h"
#include "common/obs/rpc_metrics.h"
#include "common/obs/service_metrics.h"
#include "prometheus/text_serializer.h"

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

std::set<std::string> ExportedSampleNames() {
  ServiceExposition();
  std::set<std::string> names;
  for (const auto& family : obs::Metrics().Collect()) {
    names.insert(family.name);
    if (family.type == prometheus::MetricType::Histogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) names.insert(family.name + suffix);
    }
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
