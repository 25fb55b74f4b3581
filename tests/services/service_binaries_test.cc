// Every service binary, started as a real process on 127.0.0.1 with ephemeral ports:
// health, reflection, /metrics (checked by promtool), SIGTERM, and bad flags.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "grpcpp/impl/codegen/sync_stream.h"
#include "grpcpp/support/byte_buffer.h"
#include "tests/services/grpc_probes.h"
#include "tests/support/child_process.h"

namespace ctx::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string ProtoServiceName(const std::string& svc) {
  if (svc == "inference") return "ctxstream.v1.Inference";
  if (svc == "kvcache") return "ctxstream.v1.KvCache";
  if (svc == "compressor") return "ctxstream.v1.Compressor";
  return "ctxstream.v1.Controller";
}

// Runs `promtool check metrics` on the exposition text; returns its exit code and output.
std::pair<int, std::string> PromtoolCheck(const std::string& text) {
  char path[] = "/tmp/ctx_metrics_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(path) << text;
  const std::string cmd = std::string("promtool check metrics < ") + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  const int status = pclose(p);
  std::remove(path);
  return {WEXITSTATUS(status), out};
}

}  // namespace

TEST_CASE("service binaries serve health, reflection and metrics, and stop on SIGTERM") {
  const std::string svc = GENERATE("inference", "kvcache", "compressor", "controller");
  INFO("service " << svc);
  RunningService s = StartService(svc, {});
  auto channel = InsecureChannel(s.grpc_address);

  CHECK(HealthStatus(channel) == 1);  // SERVING

  const auto services = ReflectionServices(channel);
  CHECK(std::find(services.begin(), services.end(), ProtoServiceName(svc)) != services.end());
  CHECK(std::find(services.begin(), services.end(), "grpc.health.v1.Health") != services.end());

  // The health check above went through the per-RPC metrics interceptor.
  const std::string metrics = HttpGet(s.metrics_address, "/metrics");
  CHECK(metrics.find("ctxstream_rpc_requests_total{code=\"OK\",method=\"Check\","
                     "service=\"grpc.health.v1.Health\"} 1") != std::string::npos);
  CHECK(metrics.find("ctxstream_rpc_duration_seconds_bucket") != std::string::npos);
  CHECK(metrics.find("ctxstream_rpc_in_flight") != std::string::npos);
  const auto [rc, out] = PromtoolCheck(metrics);
  INFO(out);
  CHECK(rc == 0);

  const auto t0 = Clock::now();
  s.process->Signal(SIGTERM);
  const auto code = s.process->WaitExit(5s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(Clock::now() - t0 < 5s);
}

TEST_CASE("SIGTERM with a stream still open drains and exits within 5 s") {
  RunningService s = StartService("kvcache", {"--drain_seconds=1"});
  auto channel = InsecureChannel(s.grpc_address);
  // A reflection stream left open by the client: the server must not wait for it forever.
  grpc::ClientContext ctx;
  const grpc::internal::RpcMethod method(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      grpc::internal::RpcMethod::BIDI_STREAMING, channel);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(), method, &ctx));
  REQUIRE(HealthStatus(channel) == 1);

  const auto t0 = Clock::now();
  s.process->Signal(SIGTERM);
  const auto code = s.process->WaitExit(5s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(Clock::now() - t0 < 5s);
  ctx.TryCancel();
}

TEST_CASE("an unreadable TLS file is a one-line error and a non-zero exit") {
  ChildProcess p({BinaryPath("ctxstream-compressor"), "--listen=127.0.0.1:0",
                  "--metrics_listen=127.0.0.1:0", "--tls_cert=/nonexistent/cert.pem",
                  "--tls_key=/nonexistent/key.pem"});
  const auto code = p.WaitExit(10s);
  REQUIRE(code.has_value());
  CHECK(*code != 0);
  const std::string err = p.DrainStderr(1s);
  CHECK(err.find("--tls_cert=/nonexistent/cert.pem") != std::string::npos);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
}

TEST_CASE("a port in use is a one-line error and a non-zero exit") {
  RunningService first = StartService("controller", {});
  ChildProcess second({BinaryPath("ctxstream-controller"), "--listen=" + first.grpc_address,
                       "--metrics_listen=127.0.0.1:0"});
  const auto code = second.WaitExit(10s);
  REQUIRE(code.has_value());
  CHECK(*code != 0);
  const std::string err = second.DrainStderr(1s);
  CHECK(err.find("cannot listen on " + first.grpc_address) != std::string::npos);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
}

TEST_CASE("a metrics port in use is a one-line error and a non-zero exit") {
  RunningService first = StartService("inference", {});
  ChildProcess second({BinaryPath("ctxstream-inference"), "--listen=127.0.0.1:0",
                       "--metrics_listen=" + first.metrics_address});
  const auto code = second.WaitExit(10s);
  REQUIRE(code.has_value());
  CHECK(*code != 0);
  const std::string err = second.DrainStderr(1s);
  CHECK(err.find("cannot serve metrics on " + first.metrics_address) != std::string::npos);
}

TEST_CASE("unknown flag values are rejected") {
  ChildProcess p({BinaryPath("ctxstream-kvcache"), "--listen=127.0.0.1:0",
                  "--metrics_listen=127.0.0.1:0", "--log_format=xml"});
  const auto code = p.WaitExit(10s);
  REQUIRE(code.has_value());
  CHECK(*code != 0);
  CHECK(p.DrainStderr(1s).find("--log_format=xml") != std::string::npos);
}

// Run only by the next test, as a process of its own: starts a child, prints its pid and
// leaks it, the way a shared fixture (`static T* t = new T`) does.
TEST_CASE("leaks a started child", "[.leak_child]") {
  auto* leaked = new ChildProcess({"/bin/sleep", "300"});
  std::printf("%d\n", leaked->pid());
  std::fflush(stdout);
}

TEST_CASE("a process a test starts dies with the test, even when the test leaks it") {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  ChildProcess test({self, "[.leak_child]"});
  std::optional<std::string> line;
  while ((line = test.ReadStdoutLine(30s)) &&
         (line->empty() || line->find_first_not_of("0123456789") != std::string::npos)) {
  }
  REQUIRE(line.has_value());
  const pid_t leaked = std::stoi(*line);
  REQUIRE(leaked > 0);
  const auto code = test.WaitExit(30s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  // Gone, or a zombie waiting for a reaper: not running either way.
  auto running = [&] {
    std::ifstream stat("/proc/" + std::to_string(leaked) + "/stat");
    std::string pid, comm, state;
    return static_cast<bool>(stat >> pid >> comm >> state) && state != "Z" && state != "X";
  };
  const auto t0 = Clock::now();
  while (running() && Clock::now() - t0 < 10s) std::this_thread::sleep_for(50ms);
  CHECK_FALSE(running());
}

TEST_CASE("a program that cannot be executed is an exception naming it") {
  try {
    ChildProcess p({"/nonexistent/ctxstream-nothing"});
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("/nonexistent/ctxstream-nothing") != std::string::npos);
  }
}

}  // namespace ctx::testing
