// The dashboards and rules against a live cluster: the four real services are started, a
// context is registered and queried as text, KV and compressed text (plus one query whose
// TTFT objective cannot be met), every service's /metrics is scraped, and every metric name
// that a Grafana dashboard or a Prometheus rule selects must be a sample some service really
// serves (or a recording rule's name). `promtool check metrics` must pass on every scrape.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/rpc/channel.h"
#include "ctxstream/v1/controller.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/deploy/deploy_support.h"
#include "tests/support/test_cluster.h"

namespace ctx::testing {
namespace {

namespace fs = std::filesystem;
namespace pb = ctxstream::v1;
using nlohmann::json;

const std::string kRoot = CTX_SOURCE_DIR;

// Metrics that Prometheus itself makes for every target (not served by any service).
const std::set<std::string> kPrometheusMade = {"up"};

struct Cluster : TestCluster {
  struct Answer {
    pb::Plan plan;
    pb::QueryResult result;
  };

  Answer Ask(pb::QueryRequest req) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    req.set_question("\nWhat does this document describe?");
    req.set_max_tokens(4);
    auto reader = stub->Query(&ctx, req);
    Answer answer;
    pb::QueryEvent e;
    int tokens = 0;
    while (reader->Read(&e)) {
      if (e.has_plan()) answer.plan = e.plan();
      if (e.has_token()) ++tokens;
      if (e.has_result()) answer.result = e.result();
    }
    const grpc::Status s = reader->Finish();
    INFO(s.error_message());
    REQUIRE(s.ok());
    CHECK(tokens == 4);
    return answer;
  }

  std::map<std::string, std::string> Scrape() const {
    return {{"controller", HttpGet(controller.metrics_address, "/metrics")},
            {"inference", HttpGet(inference.metrics_address, "/metrics")},
            {"kvcache", HttpGet(kvcache.metrics_address, "/metrics")},
            {"compressor", HttpGet(compressor.metrics_address, "/metrics")}};
  }
};

std::string ReadPrefix(const std::string& path, size_t bytes) {
  return ReadFileOrThrow(path).substr(0, bytes);
}

// Where each metric name is referenced: name -> "file: expression" (the first seen).
using References = std::map<std::string, std::string>;

void AddReferences(References& refs, const std::string& where, const std::string& expr,
                   const std::set<std::string>& names) {
  for (const auto& n : names) refs.emplace(n, where + ": " + expr);
}

// Every metric the Grafana dashboards select: panel targets and templating queries.
References DashboardReferences() {
  References refs;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(kRoot + "/deploy/grafana/dashboards")) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    const std::string file = entry.path().filename().string();
    const json dash = json::parse(ReadFileOrThrow(entry.path().string()));
    for (const auto& panel : dash.value("panels", json::array())) {
      for (const auto& t : panel.value("targets", json::array())) {
        const std::string expr = t.value("expr", "");
        AddReferences(refs, file, expr, PromqlMetricNames(expr));
      }
    }
    for (const auto& v : dash["templating"].value("list", json::array())) {
      if (v.value("type", "") != "query") continue;
      const json& q = v["query"];
      const std::string query = q.is_string() ? q.get<std::string>() : q.value("query", "");
      AddReferences(refs, file + " variable " + v.value("name", ""), query,
                    GrafanaQueryMetricNames(query));
    }
  }
  REQUIRE(files == 2);
  return refs;
}

// Every metric the Prometheus rules select, and the names the recording rules define.
std::pair<References, std::set<std::string>> RuleReferences() {
  const std::string path = kRoot + "/deploy/prometheus/rules.yml";
  const auto r = RunCommand("yq -c . " + ShellQuote(path));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const json rules = json::parse(r.output);
  References refs;
  std::set<std::string> recorded;
  for (const auto& group : rules["groups"]) {
    for (const auto& rule : group["rules"]) {
      const std::string expr = rule["expr"];
      AddReferences(refs, "rules.yml " + rule.value("record", rule.value("alert", "")), expr,
                    PromqlMetricNames(expr));
      if (rule.contains("record")) recorded.insert(rule["record"].get<std::string>());
    }
  }
  REQUIRE(recorded.size() >= 5);
  return {refs, recorded};
}

}  // namespace

TEST_CASE("PromQL metric-name extraction skips functions, labels, ranges and variables",
          "[deploy][metrics]") {
  CHECK(PromqlMetricNames("histogram_quantile(0.95, sum by (le, form) (rate(a_bucket{x=\"b c\", "
                          "namespace=~\"$namespace\"}[$__rate_interval])))") ==
        std::set<std::string>{"a_bucket"});
  CHECK(PromqlMetricNames("sum without (instance) (x_total offset 5m) / on (job) group_left "
                          "(pod) ctxstream:y:rate5m > bool 0.25 * 1e3") ==
        std::set<std::string>{"x_total", "ctxstream:y:rate5m"});
  CHECK(PromqlMetricNames("up{job=~\"ctxstream.*\"} == 0 and max_over_time(z[1h:5m])") ==
        std::set<std::string>{"up", "z"});
  CHECK(PromqlMetricNames("sum(rate(${metric}[5m])) or vector(0)").empty());
  CHECK(GrafanaQueryMetricNames("label_values(ctxstream_rpc_requests_total, namespace)") ==
        std::set<std::string>{"ctxstream_rpc_requests_total"});
  CHECK(GrafanaQueryMetricNames("label_values(namespace)").empty());
}

TEST_CASE("every metric the dashboards and rules select is served by the live cluster",
          "[deploy][metrics][live]") {
  if (!HaveTool("yq")) {
    WARN("yq not found (scripts/setup.sh installs Debian's yq): skipped");
    return;
  }
  Cluster cluster;
  // ~1,400 characters: a few hundred tokens, more than one 256-token KV chunk.
  const absl::StatusOr<std::string> registered = cluster.Register(
      ReadPrefix(SourcePath("tests/data/long_docs/01_git-doc_git-subtree.txt"), 1400));
  INFO(registered.status().ToString());
  REQUIRE(registered.ok());
  const std::string& id = *registered;

  pb::QueryRequest text;
  text.set_context_id(id);
  text.set_force_form(pb::FORM_TEXT);
  text.set_force_level(-1);
  CHECK(cluster.Ask(text).plan.form() == pb::FORM_TEXT);

  pb::QueryRequest kv = text;
  kv.set_force_form(pb::FORM_KV);
  kv.set_force_level(2);
  const auto kv_answer = cluster.Ask(kv);
  CHECK(kv_answer.plan.form() == pb::FORM_KV);
  CHECK_FALSE(kv_answer.result.fell_back());

  pb::QueryRequest compressed = text;
  compressed.set_force_form(pb::FORM_COMPRESSED_TEXT);
  CHECK(cluster.Ask(compressed).plan.form() == pb::FORM_COMPRESSED_TEXT);

  // Before any violation the violations series already reads 0, so violation ratios are 0
  // rather than empty (common/obs/service_metrics.cc CountQuery).
  const std::string before = HttpGet(cluster.controller.metrics_address, "/metrics");
  CHECK(before.find("ctxstream_controller_slo_violations_total{form=\"text\"} 0") !=
        std::string::npos);

  // The controller chooses, re-planning per chunk, under an objective no option can meet: the
  // query counts as an SLO violation.
  pb::QueryRequest hurried;
  hurried.set_context_id(id);
  hurried.set_force_level(-1);
  hurried.set_slo_ttft_seconds(1e-6);
  hurried.set_adapt_per_chunk(true);
  CHECK_FALSE(cluster.Ask(hurried).result.slo_met());

  const auto scraped = cluster.Scrape();
  std::set<std::string> live;
  std::map<std::string, std::string> served_by;
  for (const auto& [service, text_exposition] : scraped) {
    for (const auto& n : SampleLineNamesOf(text_exposition)) {
      live.insert(n);
      served_by[n] += served_by[n].empty() ? service : "," + service;
    }
  }
  REQUIRE(live.size() > 40);
  // The queries above moved the counters of their own forms.
  const std::string& controller = scraped.at("controller");
  for (const char* form : {"text", "kv", "compressed_text"}) {
    INFO(form);
    CHECK(controller.find("ctxstream_controller_queries_total{form=\"" + std::string(form) +
                          "\"}") != std::string::npos);
  }
  CHECK(controller.find("ctxstream_controller_slo_violations_total{") != std::string::npos);

  const References dashboards = DashboardReferences();
  const auto [rules, recorded] = RuleReferences();
  REQUIRE(dashboards.size() > 20);
  REQUIRE(rules.size() > 8);
  int checked = 0;
  for (const References* refs : {&dashboards, &rules}) {
    for (const auto& [name, where] : *refs) {
      INFO(where);
      INFO(name << " is selected but no live service serves a sample of that name");
      const bool ok =
          live.count(name) == 1 || recorded.count(name) == 1 || kPrometheusMade.count(name) == 1;
      CHECK(ok);
      ++checked;
    }
  }
  // Recording rules used by dashboards or alerts are defined, and their inputs are live
  // (checked above through the rules' own expressions).
  for (const auto& [name, where] : dashboards) {
    if (name.find(':') == std::string::npos) continue;
    INFO(where);
    CHECK(recorded.count(name) == 1);
  }
  WARN(checked << " metric references checked against " << live.size()
               << " live sample names of 4 services");

  if (!HaveTool("promtool")) {
    WARN("promtool not found (scripts/setup.sh installs package prometheus): skipped");
    return;
  }
  for (const auto& [service, exposition] : scraped) {
    INFO(service);
    const std::string path =
        std::string(CTX_BINARY_DIR) + "/tests/deploy/live-queried-" + service + ".prom";
    {
      std::ofstream out(path);
      out << exposition;
    }
    const auto r = RunCommand("promtool check metrics < " + ShellQuote(path));
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(r.output.find("ctxstream_") == std::string::npos);  // no lint findings
  }
}

}  // namespace ctx::testing
