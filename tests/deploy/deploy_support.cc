#include "tests/deploy/deploy_support.h"

#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <cctype>
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

std::set<std::string> SampleLineNamesOf(const std::string& exposition) {
  std::set<std::string> names;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t end = line.find_first_of("{ ");
    if (end == std::string::npos || end == 0) continue;
    names.insert(line.substr(0, end));
  }
  return names;
}

namespace {

bool IsIdentStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool IsIdentChar(char c) { return IsIdentStart(c) || std::isdigit(static_cast<unsigned char>(c)); }

// Index just past the bracket that closes the one at `open` (text[open] is '(' '{' or '['),
// skipping string literals; text.size() if unbalanced.
size_t SkipBalanced(const std::string& text, size_t open) {
  const char o = text[open];
  const char c = o == '(' ? ')' : o == '{' ? '}' : ']';
  int depth = 0;
  for (size_t i = open; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '"' || ch == '\'' || ch == '`') {
      const size_t close = text.find(ch, i + 1);
      if (close == std::string::npos) return text.size();
      i = close;
    } else if (ch == o) {
      ++depth;
    } else if (ch == c && --depth == 0) {
      return i + 1;
    }
  }
  return text.size();
}

}  // namespace

std::set<std::string> PromqlMetricNames(const std::string& expr) {
  static const std::set<std::string> kKeywords = {
      "and",     "or",    "unless",   "bool",       "offset",      "by",
      "without", "on",    "ignoring", "group_left", "group_right", "inf",
      "nan",     "atan2", "start",    "end",        "Inf",         "NaN"};
  // Aggregation operators may take their by/without clause before the parentheses
  // ("sum by (le) (...)"), so they are not always followed by '('.
  static const std::set<std::string> kAggregations = {
      "sum",   "min",          "max",     "avg",  "group",    "stddev", "stdvar",
      "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"};
  static const std::set<std::string> kLabelLists = {"by",       "without",    "on",
                                                    "ignoring", "group_left", "group_right"};
  std::set<std::string> names;
  size_t i = 0;
  while (i < expr.size()) {
    const char ch = expr[i];
    if (ch == '"' || ch == '\'' || ch == '`') {  // string literal
      const size_t close = expr.find(ch, i + 1);
      i = close == std::string::npos ? expr.size() : close + 1;
    } else if (ch == '{' || ch == '[') {  // label matchers, range or subquery
      i = SkipBalanced(expr, i);
    } else if (ch == '$') {  // Grafana variable: $name or ${name}
      ++i;
      if (i < expr.size() && expr[i] == '{') {
        i = SkipBalanced(expr, i);
      } else {
        while (i < expr.size() && IsIdentChar(expr[i])) ++i;
      }
    } else if (std::isdigit(static_cast<unsigned char>(ch)) || ch == '.') {  // 0.95, 1e3, 5m
      while (i < expr.size() && (IsIdentChar(expr[i]) || expr[i] == '.')) ++i;
    } else if (IsIdentStart(ch)) {
      const size_t start = i;
      while (i < expr.size() && IsIdentChar(expr[i])) ++i;
      const std::string word = expr.substr(start, i - start);
      size_t next = i;
      while (next < expr.size() && std::isspace(static_cast<unsigned char>(expr[next]))) ++next;
      const bool call = next < expr.size() && expr[next] == '(';
      if (kLabelLists.count(word) && call) {
        i = SkipBalanced(expr, next);  // by (le, form): label names, not metrics
      } else if (!call && !kKeywords.count(word) && !kAggregations.count(word)) {
        names.insert(word);
      }
    } else {
      ++i;
    }
  }
  return names;
}

std::set<std::string> GrafanaQueryMetricNames(const std::string& query) {
  static const std::regex kLabelValues(
      R"(^\s*label_values\(\s*([^,()]*?)\s*(,\s*[A-Za-z_][A-Za-z0-9_]*\s*)?\)\s*$)");
  std::smatch m;
  if (std::regex_match(query, m, kLabelValues)) {
    if (!m[2].matched) return {};  // label_values(label): every series, no metric named
    return PromqlMetricNames(m[1].str());
  }
  return PromqlMetricNames(query);
}

}  // namespace ctx::testing
