// Helpers for tests/deploy: run a shell command, read files, and the set of metric names the
// services export (derived from the registry's exposition, never from a hand-copied list).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace ctx::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `command` with /bin/sh, stdin from /dev/null, stdout+stderr captured.
CommandResult RunCommand(const std::string& command);
// True if `tool` is on PATH.
bool HaveTool(const std::string& tool);
// Whole file, or throws std::runtime_error.
std::string ReadFileOrThrow(const std::string& path);
// <CTX_BINARY_DIR>/bin/<name>: a program built by this tree.
std::string BinaryPathForDeploy(const std::string& name);
// Single-quotes `s` for /bin/sh.
std::string ShellQuote(const std::string& s);

// Records one observation through every helper of service_metrics.h (label values
// kv/level 2, link kvcache-0>inference-0, backend memory, ...).
void RecordOneOfEverything();

// Registers every service's metric families (service_metrics.h and the per-RPC metrics) and
// returns the Prometheus text exposition of ctx::obs::Metrics().
std::string ServiceExposition();
// Starts every service binary (build/bin/ctxstream-<name>) on ephemeral ports, makes one
// grpc.health.v1 call to each through ctxctl (so the per-RPC series exist), scrapes its
// /metrics and stops it. Returns service name -> exposition text. Cached per process.
const std::map<std::string, std::string>& ScrapeLiveServices();
// Sample names of an exposition text, from its "# TYPE <name> <type>" lines (histograms
// add _bucket/_sum/_count).
std::set<std::string> SampleNamesOf(const std::string& exposition);

// Every sample name a service can export: those of ServiceExposition() plus those the live
// services serve (the per-RPC metrics appear only after a call).
std::set<std::string> ExportedSampleNames();
// The family names alone (as in "# TYPE <name> <type>").
std::set<std::string> ExportedFamilyNames();
// Every identifier matching ctxstream_[a-z0-9_]+ in `text`.
std::set<std::string> MetricIdentifiers(const std::string& text);

// Names of the samples an exposition text actually carries (lines "<name>{...} <value>" or
// "<name> <value>"), so a family declared without any series does not count; histograms
// appear as their _bucket/_sum/_count samples.
std::set<std::string> SampleLineNamesOf(const std::string& exposition);

// The metric names a PromQL expression selects: string literals, label matchers {...},
// ranges [...], Grafana variables ($x, ${x}), numbers and durations are skipped, as are
// function and aggregation names (an identifier before '('), keywords and the label lists
// of by/without/on/ignoring/group_left/group_right. Recording-rule names (with ':') count.
//   PromqlMetricNames("sum by (le) (rate(a_bucket{x=\"y\"}[5m])) / b") == {"a_bucket", "b"}
std::set<std::string> PromqlMetricNames(const std::string& expr);
// The metric a Grafana templating query reads: label_values(<metric>, <label>) -> {metric};
// label_values(<label>) -> {}; anything else is parsed as PromQL.
std::set<std::string> GrafanaQueryMetricNames(const std::string& query);

}  // namespace ctx::testing
