// Test support: runs a program as a child process with its stdout/stderr captured, so
// integration tests can start real servers, read their "ready" line, and stop them.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ctx::testing {

class ChildProcess {
 public:
  // Starts argv[0] (a path) with the given arguments. Throws std::runtime_error on failure.
  explicit ChildProcess(std::vector<std::string> argv);
  ~ChildProcess();  // SIGKILLs the child if it is still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Next line of stdout (without '\n'), or nullopt on EOF/timeout.
  std::optional<std::string> ReadStdoutLine(std::chrono::milliseconds timeout);
  // Everything written to stderr so far (non-blocking drain; waits up to `timeout` for EOF).
  std::string DrainStderr(std::chrono::milliseconds timeout);

  void Signal(int sig);
  // Exit code (or 128+signal), or nullopt if still running after `timeout`.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_buf_;
  std::string err_buf_;
  std::optional<int> exit_code_;
};

// A started ctxstream service: parses "ctxstream-<name> ready grpc=H:P metrics=H:P".
struct RunningService {
  std::unique_ptr<ChildProcess> process;
  std::string grpc_address;     // host:port
  std::string metrics_address;  // host:port
};

// Starts build/bin/ctxstream-<name> on 127.0.0.1 with ephemeral ports plus `extra_args`;
// throws with the child's stderr if it does not report ready within `timeout`.
RunningService StartService(const std::string& name, const std::vector<std::string>& extra_args,
                            std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Path of a built binary: <CTX_BINARY_DIR>/bin/<name>.
std::string BinaryPath(const std::string& name);
// Path under the source tree: <CTX_SOURCE_DIR>/<rel>.
std::string SourcePath(const std::string& rel);

// HTTP GET over loopback (Boost.Asio); returns the body, throws on failure/non-200.
std::string HttpGet(const std::string& host_port, const std::string& path);

}  // namespace ctx::testing
