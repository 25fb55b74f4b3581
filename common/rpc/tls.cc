#include "common/rpc/tls.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, tls_cert, "", "Server certificate chain (PEM). Enables TLS with --tls_key.");
ABSL_FLAG(std::string, tls_key, "", "Server private key (PEM).");
ABSL_FLAG(std::string, tls_ca, "",
          "CA bundle (PEM) for client certificates; when set, clients must present one (mTLS).");
ABSL_FLAG(std::string, client_tls_ca, "",
          "CA bundle (PEM) trusted for outbound calls; when set, outbound calls use TLS.");
ABSL_FLAG(std::string, client_tls_cert, "", "Client certificate (PEM) for outbound mutual TLS.");
ABSL_FLAG(std::string, client_tls_key, "", "Client private key (PEM) for outbound mutual TLS.");

namespace ctx::rpc {

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const std::string why = absl::StrCat("--", flag, "=", path, ": cannot read: ", strerror(err));
    return err == EACCES ? absl::PermissionDeniedError(why) : absl::NotFoundError(why);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", path, ": not a PEM file"));
  }
  return ss.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFlags() {
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  const std::string ca = absl::GetFlag(FLAGS_tls_ca);
  if (cert.empty() && key.empty() && ca.empty()) return grpc::InsecureServerCredentials();
  if (cert.empty() || key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key must be given together");
  }
  grpc::SslServerCredentialsOptions opts(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> c = ReadPemFile(cert, "tls_cert");
  if (!c.ok()) return c.status();
  absl::StatusOr<std::string> k = ReadPemFile(key, "tls_key");
  if (!k.ok()) return k.status();
  pair.cert_chain = *c;
  pair.private_key = *k;
  opts.pem_key_cert_pairs.push_back(pair);
  if (!ca.empty()) {
    absl::StatusOr<std::string> roots = ReadPemFile(ca, "tls_ca");
    if (!roots.ok()) return roots.status();
    opts.pem_root_certs = *roots;
    opts.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromFlags() {
  const std::string ca = absl::GetFlag(FLAGS_client_tls_ca);
  const std::string cert = absl::GetFlag(FLAGS_client_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_client_tls_key);
  if (ca.empty() && cert.empty() && key.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions opts;
  if (!ca.empty()) {
    absl::StatusOr<std::string> roots = ReadPemFile(ca, "client_tls_ca");
    if (!roots.ok()) return roots.status();
    opts.pem_root_certs = *roots;
  }
  if (!cert.empty() || !key.empty()) {
    if (cert.empty() || key.empty()) {
      return absl::InvalidArgumentError(
          "--client_tls_cert and --client_tls_key must be given together");
    }
    absl::StatusOr<std::string> c = ReadPemFile(cert, "client_tls_cert");
    if (!c.ok()) return c.status();
    absl::StatusOr<std::string> k = ReadPemFile(key, "client_tls_key");
    if (!k.ok()) return k.status();
    opts.pem_cert_chain = *c;
    opts.pem_private_key = *k;
  }
  return grpc::SslCredentials(opts);
}

}  // namespace ctx::rpc
