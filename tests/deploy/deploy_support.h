// Helpers for tests/deploy: run a shell command, read files, and the set of metric names the
// services export (derived from the registry's exposition, never from a hand-copied list).
#pragma once

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

// Registers every service's metric families (service_metrics.h and the per-RPC metrics) and
// returns the Prometheus text exposition of ctx::obs::Metrics().
std::string ServiceExposition();
// Every sample name the exposition can contain: each family name, plus _bucket/_sum/_count
// for histograms.
std::set<std::string> ExportedSampleNames();
// The family names alone (as in "# TYPE <name> <type>").
std::set<std::string> ExportedFamilyNames();
// Every identifier matching ctxstream_[a-z0-9_]+ in `text`.
std::set<std::string> MetricIdentifiers(const std::string& text);

}  // namespace ctx::testing
