// Runs a Python benchmark script as a child process and reads its result: the last line of
// its stdout that starts with '{' is a JSON object. Used by the benchmarks that compare
// against PyTorch in the same run (bench_model, lingua_bench).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "nlohmann/json.hpp"

namespace ctx::bench {

// The interpreter: $CTX_PYTHON, else Debian's /usr/bin/python3 (the one with python3-torch).
inline std::string PythonInterpreter() {
  const char* py_env = std::getenv("CTX_PYTHON");
  return py_env != nullptr ? py_env : "/usr/bin/python3";
}

// Runs `cmd` (a shell command line); nullopt with a note on stderr when it fails or prints
// no JSON object, so that the caller prints its own numbers without the PyTorch column.
inline std::optional<nlohmann::json> RunJsonChild(const std::string& cmd) {
  std::fflush(stdout);
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  const size_t pos = out.rfind('{');  // the result is the last JSON line
  if (rc != 0 || pos == std::string::npos) {
    std::fprintf(stderr,
                 "note: PyTorch column skipped: `%s` failed (exit %d); needs python3 with torch "
                 "and numpy\n",
                 cmd.c_str(), rc);
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(out.substr(pos), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    std::fprintf(stderr, "note: PyTorch column skipped: unparsable output: %s\n", out.c_str());
    return std::nullopt;
  }
  return j;
}

}  // namespace ctx::bench
