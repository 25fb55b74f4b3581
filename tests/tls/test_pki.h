// A throwaway PKI for TLS tests, made with the `openssl` CLI in a fresh temporary folder:
//   ca.crt/ca.key          the CA the services and clients trust
//   server.crt/server.key  signed by the CA; SAN IP:127.0.0.1, DNS:localhost; serverAuth
//   client.crt/client.key  signed by the CA; clientAuth (for mutual TLS)
//   other-ca.crt           an unrelated CA (a client trusting it must be refused)
//   rogue-client.crt/.key  a client certificate signed by other-ca
// EC P-256 keys keep generation well under a second.
#pragma once

#include <string>

namespace ctx::testing {

class TestPki {
 public:
  TestPki();   // throws std::runtime_error with openssl's output if a step fails
  ~TestPki();  // removes the folder
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  const std::string& dir() const { return dir_; }
  std::string Path(const std::string& file) const { return dir_ + "/" + file; }
  // Whole contents of a file in the folder (PEM text).
  std::string Read(const std::string& file) const;

 private:
  std::string dir_;
};

}  // namespace ctx::testing
