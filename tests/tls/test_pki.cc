#include "tests/tls/test_pki.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ctx::testing {
namespace {

// Every step in one shell script so a failure reports the exact openssl message.
// A config file of our own keeps the result independent of the system openssl.cnf.
constexpr const char* kScript = R"(set -e
cat > pki.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = ctxstream-test
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
CNF
EC="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
ca() {  # ca <name> <CN>
  openssl req -x509 -config pki.cnf -extensions v3_ca $EC -keyout $1.key -out $1.crt \
    -days 2 -subj "/CN=$2"
}
leaf() {  # leaf <name> <CN> <extensions> <ca>
  openssl req -new -config pki.cnf $EC -keyout $1.key -out $1.csr -subj "/CN=$2"
  openssl x509 -req -in $1.csr -CA $4.crt -CAkey $4.key -CAcreateserial -days 2 \
    -extfile pki.cnf -extensions $3 -out $1.crt
}
ca ca "ctxstream test CA"
ca other-ca "unrelated CA"
leaf server localhost server ca
leaf client ctxstream-client client ca
leaf rogue-client rogue-client client other-ca
)";

}  // namespace

TestPki::TestPki() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "ctx-tls-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  {
    std::ofstream script(Path("make-pki.sh"));
    script << kScript;
  }
  const std::string cmd = "cd '" + dir_ + "' && sh make-pki.sh > openssl.log 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    throw std::runtime_error("openssl failed to make test certificates: " + Read("openssl.log"));
  }
}

TestPki::~TestPki() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string TestPki::Read(const std::string& file) const {
  std::ifstream in(Path(file), std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace ctx::testing
