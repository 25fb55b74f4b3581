#include "common/rpc/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/obs/logging.h"
#include "common/obs/metrics.h"
#include "common/obs/rpc_metrics.h"
#include "common/rpc/tls.h"
#include "grpc/support/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "", "gRPC listen address host:port (port 0 = pick a free port).");
ABSL_FLAG(std::string, metrics_listen, "",
          "Prometheus /metrics listen address host:port (port 0 = pick a free port).");
ABSL_FLAG(int32_t, max_message_bytes, 8 << 20,
          "Largest gRPC message accepted or sent, in bytes (KV parts are at most 1 MiB).");
ABSL_FLAG(double, drain_seconds, 3.0,
          "On SIGTERM/SIGINT, seconds to let in-flight RPCs finish before cancelling them.");

namespace ctx::rpc {
namespace {

// SIGTERM/SIGINT are caught by a handler that writes the signal number to a pipe, and
// Serve() reads the pipe. (Blocking the signals and sigwait()ing is not enough: libraries
// such as OpenBLAS start threads before main() runs, with the signals unblocked, and the
// kernel may deliver a process-directed signal to any of them.)
int g_signal_pipe[2] = {-1, -1};

void OnTerminationSignal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = write(g_signal_pipe[1], &b, 1);  // async-signal-safe
}

void CatchTerminationSignals() {
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) std::abort();
  struct sigaction sa {};
  sa.sa_handler = OnTerminationSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

int WaitForTerminationSignal() {
  unsigned char b = 0;
  while (read(g_signal_pipe[0], &b, 1) != 1) {
  }
  return b;
}

// Ends the process without running static destructors: grpc's ~Server can wait for
// an executor thread parked in epoll_wait for many seconds (grpc/grpc#41050), and by
// now every RPC has been drained and every log flushed.
[[noreturn]] void ExitNow(int code) {
  spdlog::default_logger()->flush();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

// gRPC core's own log lines go through spdlog, so that --log_format=json holds for them.
void GrpcLogToSpdlog(gpr_log_func_args* args) {
  const spdlog::level::level_enum lvl =
      args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::err
      : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                : spdlog::level::debug;
  spdlog::log(lvl, "grpc {}:{}: {}", args->file, args->line, args->message);
}

// Binds host:port once ourselves so that a busy or invalid address gives a clear error
// before gRPC (which only logs a nested error tree and returns no server).
absl::Status CheckListenAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--listen=", address, ": expected host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const std::string port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve listen address ", address));
  }
  absl::Status status = absl::OkStatus();
  const int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  const int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
    status =
        absl::UnavailableError(absl::StrCat("cannot listen on ", address, ": ", strerror(errno)));
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(res);
  return status;
}

}  // namespace

ServiceDefaults DefaultsFor(const std::string& name) {
  if (name == "inference") return {name, "0.0.0.0:50051", "0.0.0.0:9461"};
  if (name == "kvcache") return {name, "0.0.0.0:50052", "0.0.0.0:9462"};
  if (name == "compressor") return {name, "0.0.0.0:50053", "0.0.0.0:9463"};
  if (name == "controller") return {name, "0.0.0.0:50050", "0.0.0.0:9460"};
  return {name, "0.0.0.0:50059", "0.0.0.0:9469"};
}

ServerMain::ServerMain(const std::string& name, int argc, char** argv)
    : defaults_(DefaultsFor(name)) {
  absl::SetProgramUsageMessage(absl::StrCat("ctxstream ", name, " service. Flags: --help."));
  absl::ParseCommandLine(argc, argv);
  CatchTerminationSignals();
  if (absl::Status s = obs::InitLogging(); !s.ok()) std::exit(Fail(s) + 1);
  gpr_set_log_function(GrpcLogToSpdlog);
}

int ServerMain::Fail(const absl::Status& status) const {
  std::fprintf(stderr, "ctxstream-%s: error: %s\n", defaults_.name.c_str(),
               std::string(status.message()).c_str());
  return 1;
}

int ServerMain::Serve(const std::vector<grpc::Service*>& services) {
  std::string listen = absl::GetFlag(FLAGS_listen);
  if (listen.empty()) listen = defaults_.listen;
  std::string metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (metrics_listen.empty()) metrics_listen = defaults_.metrics_listen;

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = ServerCredentialsFromFlags();
  if (!creds.ok()) return Fail(creds.status());
  if (absl::Status s = CheckListenAddress(listen); !s.ok()) return Fail(s);

  absl::StatusOr<std::unique_ptr<prometheus::Exposer>> exposer =
      obs::StartMetricsExposer(metrics_listen);
  if (!exposer.ok()) return Fail(exposer.status());
  const std::vector<int> metrics_ports = (*exposer)->GetListeningPorts();
  const std::string metrics_host = metrics_listen.substr(0, metrics_listen.rfind(':'));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, *creds, &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a busy port must fail
  const int max_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  for (grpc::Service* s : services) builder.RegisterService(s);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(obs::MakeRpcMetricsInterceptor());
  builder.experimental().SetInterceptorCreators(std::move(creators));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen, " (address in use or invalid)")));
  }
  server->GetHealthCheckService()->SetServingStatus(true);

  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("ctxstream-%s ready grpc=%s:%d metrics=%s:%d\n", defaults_.name.c_str(), host.c_str(),
              port, metrics_host.c_str(), metrics_ports.empty() ? 0 : metrics_ports.front());
  std::fflush(stdout);
  spdlog::info("{} serving on {}:{} (metrics on {}:{})", defaults_.name, host, port, metrics_host,
               metrics_ports.empty() ? 0 : metrics_ports.front());

  const int sig = WaitForTerminationSignal();
  spdlog::info("{}: received {}, draining", defaults_.name, sig == SIGTERM ? "SIGTERM" : "SIGINT");

  // Drain: report NOT_SERVING so that load balancers stop sending, let in-flight RPCs
  // finish until the deadline, then cancel the rest. A watchdog bounds the whole exit
  // in case some handler ignores cancellation.
  const double drain = absl::GetFlag(FLAGS_drain_seconds);
  std::thread([drain] {
    std::this_thread::sleep_for(std::chrono::duration<double>(drain + 1.0));
    spdlog::warn("shutdown did not finish within {:.1f} s; exiting anyway", drain + 1.0);
    ExitNow(0);
  }).detach();
  server->GetHealthCheckService()->SetServingStatus(false);
  for (auto& hook : shutdown_hooks_) hook();
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::duration_cast<std::chrono::system_clock::duration>(
                       std::chrono::duration<double>(drain)));
  spdlog::info("{}: stopped", defaults_.name);
  ExitNow(0);
}

}  // namespace ctx::rpc
