#include "tests/support/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

// clang-format off
#include <utility>  // first: boost 1.74 asio uses std::exchange without including it
#include <boost/asio.hpp>
// clang-format on

extern char** environ;

namespace ctx::testing {
namespace {

using Clock = std::chrono::steady_clock;

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Reads what is available on fd into buf; returns false on EOF.
bool ReadSome(int fd, std::string& buf) {
  char tmp[4096];
  const ssize_t n = ::read(fd, tmp, sizeof tmp);
  if (n > 0) {
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  }
  return n < 0 && (errno == EAGAIN || errno == EINTR);
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> argv) {
  int out[2], err[2], exec_error[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      ::pipe2(exec_error, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    // Child of a multi-threaded process: async-signal-safe calls only until execve.
    // The server dies with the test process that started it, however that ends (a leaked
    // shared fixture, a crash, ctest's timeout kill): no server outlives its test.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    // The test process may have signals blocked (gRPC threads); give the child a clean mask.
    sigset_t empty;
    sigemptyset(&empty);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    ::execve(cargv[0], cargv.data(), environ);
    const int e = errno;
    (void)!::write(exec_error[1], &e, sizeof e);
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(out[1]);
  ::close(err[1]);
  ::close(exec_error[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  fcntl(err_fd_, F_SETFL, O_NONBLOCK);
  int rc = pid_ < 0 ? fork_errno : 0;
  if (pid_ > 0) {
    // EOF (execve closed the CLOEXEC pipe) = started; an errno = execve failed.
    int e = 0;
    ssize_t n;
    while ((n = ::read(exec_error[0], &e, sizeof e)) < 0 && errno == EINTR) {
    }
    if (n == static_cast<ssize_t>(sizeof e)) {
      rc = e;
      int status;
      ::waitpid(pid_, &status, 0);
      exit_code_ = ExitCodeOf(status);
    }
  }
  ::close(exec_error[0]);
  if (rc != 0) {
    ::close(out_fd_);
    ::close(err_fd_);
    throw std::runtime_error(std::string("cannot start ") + argv[0] + ": " + strerror(rc));
  }
}

ChildProcess::~ChildProcess() {
  if (!exit_code_.has_value() && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

std::optional<std::string> ChildProcess::ReadStdoutLine(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (size_t nl = out_buf_.find('\n'); nl != std::string::npos) {
      std::string line = out_buf_.substr(0, nl);
      out_buf_.erase(0, nl + 1);
      return line;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    if (!ReadSome(out_fd_, out_buf_)) return std::nullopt;
  }
}

std::string ChildProcess::DrainStderr(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{err_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    if (!ReadSome(err_fd_, err_buf_)) break;
  }
  return err_buf_;
}

void ChildProcess::Signal(int sig) {
  if (!exit_code_.has_value()) ::kill(pid_, sig);
}

std::optional<int> ChildProcess::WaitExit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!exit_code_.has_value()) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = ExitCodeOf(status);
      break;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return exit_code_;
}

std::string BinaryPath(const std::string& name) {
  return std::string(CTX_BINARY_DIR) + "/bin/" + name;
}

std::string SourcePath(const std::string& rel) { return std::string(CTX_SOURCE_DIR) + "/" + rel; }

RunningService StartService(const std::string& name, const std::vector<std::string>& extra_args,
                            std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {BinaryPath("ctxstream-" + name), "--listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  RunningService svc;
  svc.process = std::make_unique<ChildProcess>(argv);
  const std::string prefix = "ctxstream-" + name + " ready ";
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto line = svc.process->ReadStdoutLine(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!line.has_value()) break;
    if (line->rfind(prefix, 0) != 0) continue;
    const size_t g = line->find("grpc="), m = line->find(" metrics=");
    if (g == std::string::npos || m == std::string::npos) break;
    svc.grpc_address = line->substr(g + 5, m - g - 5);
    svc.metrics_address = line->substr(m + 9);
    return svc;
  }
  throw std::runtime_error("ctxstream-" + name + " did not become ready: " +
                           svc.process->DrainStderr(std::chrono::milliseconds(500)));
}

std::string HttpGet(const std::string& host_port, const std::string& path) {
  namespace asio = boost::asio;
  const size_t colon = host_port.rfind(':');
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  asio::ip::tcp::socket socket(io);
  asio::connect(socket, resolver.resolve(host_port.substr(0, colon), host_port.substr(colon + 1)));
  const std::string request =
      "GET " + path + " HTTP/1.0\r\nHost: " + host_port + "\r\nConnection: close\r\n\r\n";
  asio::write(socket, asio::buffer(request));
  std::string response;
  boost::system::error_code ec;
  asio::read(socket, asio::dynamic_buffer(response), ec);
  if (ec && ec != asio::error::eof) throw std::runtime_error("GET failed: " + ec.message());
  if (response.rfind("HTTP/1.", 0) != 0 || response.find(" 200 ") == std::string::npos) {
    throw std::runtime_error("GET " + path + ": " + response.substr(0, response.find('\r')));
  }
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

}  // namespace ctx::testing
