// TLS and mutual TLS on a real service binary (ctxstream-controller: the server core is the
// same in every service). Certificates come from a throwaway CA made with the openssl CLI.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "tests/support/child_process.h"
#include "tests/tls/test_pki.h"

namespace {

using namespace std::chrono_literals;
using ctx::testing::BinaryPath;
using ctx::testing::ChildProcess;
using ctx::testing::RunningService;
using ctx::testing::StartService;
using ctx::testing::TestPki;

// grpc.health.v1 Check on the whole server through `creds`: the status of the call, and
// the serving status when it succeeded.
struct HealthResult {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  int serving = -1;  // 1 = SERVING
  std::string message;
};

HealthResult CheckHealth(const std::string& address,
                         const std::shared_ptr<grpc::ChannelCredentials>& creds) {
  auto channel = grpc::CreateChannel(address, creds);
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  const grpc::Status s = stub->Check(&ctx, req, &resp);
  HealthResult r;
  r.code = s.error_code();
  r.message = s.error_message();
  if (s.ok()) r.serving = resp.status();
  return r;
}

std::shared_ptr<grpc::ChannelCredentials> Tls(const TestPki& pki, const std::string& ca,
                                              const std::string& cert_prefix = "") {
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = pki.Read(ca);
  if (!cert_prefix.empty()) {
    opts.pem_cert_chain = pki.Read(cert_prefix + ".crt");
    opts.pem_private_key = pki.Read(cert_prefix + ".key");
  }
  return grpc::SslCredentials(opts);
}

std::vector<std::string> ServerTls(const TestPki& pki) {
  return {"--tls_cert=" + pki.Path("server.crt"), "--tls_key=" + pki.Path("server.key")};
}

}  // namespace

TEST_CASE("TLS server: right CA is served, plaintext and wrong-CA clients are refused", "[tls]") {
  TestPki pki;
  RunningService s = StartService("controller", ServerTls(pki));

  const HealthResult ok = CheckHealth(s.grpc_address, Tls(pki, "ca.crt"));
  INFO(ok.message);
  CHECK(ok.code == grpc::StatusCode::OK);
  CHECK(ok.serving == 1);  // SERVING

  // Also by name: the certificate's DNS SAN is checked, not just its IP.
  const std::string port = s.grpc_address.substr(s.grpc_address.rfind(':') + 1);
  CHECK(CheckHealth("localhost:" + port, Tls(pki, "ca.crt")).serving == 1);

  const HealthResult plain = CheckHealth(s.grpc_address, grpc::InsecureChannelCredentials());
  CHECK(plain.code == grpc::StatusCode::UNAVAILABLE);
  CHECK(plain.serving == -1);

  const HealthResult wrong_ca = CheckHealth(s.grpc_address, Tls(pki, "other-ca.crt"));
  CHECK(wrong_ca.code == grpc::StatusCode::UNAVAILABLE);
  CHECK(wrong_ca.serving == -1);

  // The server is still healthy after refusing those handshakes.
  CHECK(CheckHealth(s.grpc_address, Tls(pki, "ca.crt")).serving == 1);
}

TEST_CASE("mutual TLS: only clients with a certificate from the CA are served", "[tls]") {
  TestPki pki;
  std::vector<std::string> args = ServerTls(pki);
  args.push_back("--tls_ca=" + pki.Path("ca.crt"));
  RunningService s = StartService("controller", args);

  const HealthResult with_cert = CheckHealth(s.grpc_address, Tls(pki, "ca.crt", "client"));
  INFO(with_cert.message);
  CHECK(with_cert.code == grpc::StatusCode::OK);
  CHECK(with_cert.serving == 1);

  const HealthResult no_cert = CheckHealth(s.grpc_address, Tls(pki, "ca.crt"));
  CHECK(no_cert.code == grpc::StatusCode::UNAVAILABLE);
  CHECK(no_cert.serving == -1);

  // A well-formed client certificate from another CA is not enough.
  const HealthResult rogue = CheckHealth(s.grpc_address, Tls(pki, "ca.crt", "rogue-client"));
  CHECK(rogue.code == grpc::StatusCode::UNAVAILABLE);
  CHECK(rogue.serving == -1);

  const HealthResult plain = CheckHealth(s.grpc_address, grpc::InsecureChannelCredentials());
  CHECK(plain.code == grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("bad TLS flags end the server with one line on stderr", "[tls]") {
  TestPki pki;
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--tls_cert=" + pki.Path("server.crt")}, "--tls_cert and --tls_key must be given together"},
      {{"--tls_key=" + pki.Path("server.key")}, "--tls_cert and --tls_key must be given together"},
      {{"--tls_ca=" + pki.Path("ca.crt")}, "--tls_cert and --tls_key must be given together"},
      {{"--tls_cert=" + pki.Path("missing.crt"), "--tls_key=" + pki.Path("server.key")},
       "--tls_cert=" + pki.Path("missing.crt") + ": cannot read"},
      {{"--tls_cert=" + pki.Path("pki.cnf"), "--tls_key=" + pki.Path("server.key")},
       ": not a PEM file"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {BinaryPath("ctxstream-controller"), "--listen=127.0.0.1:0",
                                     "--metrics_listen=127.0.0.1:0"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    ChildProcess p(argv);
    const auto code = p.WaitExit(20s);
    const std::string err = p.DrainStderr(1s);
    INFO(c.flags[0] << " -> " << err);
    REQUIRE(code.has_value());
    CHECK(*code != 0);
    CHECK(err.rfind("ctxstream-controller: error: ", 0) == 0);
    CHECK(err.find(c.message) != std::string::npos);
    // Exactly one line.
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  }
}
