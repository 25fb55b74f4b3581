#include "tests/harden/harden_support.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/codec/profile.h"
#include "common/rpc/kv_parts.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace ctx::harden {

using ctx::testing::SourcePath;
using ctx::testing::StartService;

RunningService StartInference() {
  return StartService("inference",
                      {"--model_dir=" + SourcePath("models/tiny-llama"), "--measure_speed=false"});
}

const RunningService& SharedInference() {
  static RunningService* s = new RunningService(StartInference());
  return *s;
}

RunningService StartKvCache(const std::string& inference, std::vector<std::string> args) {
  args.push_back("--inference=" + inference);
  args.push_back("--codec_profile=" + SourcePath("models/tiny-llama/kvcodec.profile"));
  return StartService("kvcache", args);
}

std::unique_ptr<pb::KvCache::Stub> KvCacheStub(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return pb::KvCache::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

std::unique_ptr<pb::Controller::Stub> ControllerStub(const std::string& address) {
  return pb::Controller::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

std::vector<int32_t> DocTokens(int n, int offset) {
  static const std::vector<int32_t> ids = [] {
    std::ifstream in(SourcePath("tests/data/long_doc00.ids.txt"));
    std::vector<int32_t> v;
    int32_t id;
    while (in >> id) v.push_back(id);
    return v;
  }();
  REQUIRE(static_cast<int>(ids.size()) >= offset + n);
  return std::vector<int32_t>(ids.begin() + offset, ids.begin() + offset + n);
}

std::string DocText(const std::string& name, size_t bytes) {
  std::ifstream in(SourcePath("tests/data/long_docs/" + name));
  std::stringstream ss;
  ss << in.rdbuf();
  REQUIRE(ss.str().size() >= bytes);
  return ss.str().substr(0, bytes);
}

const codec::KvCodec& ProfileCodec() {
  static const codec::KvCodec* c = [] {
    std::ifstream in(SourcePath("models/tiny-llama/kvcodec.profile"), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto p = codec::ParseProfile(ss.str());
    REQUIRE(p.ok());
    auto k = codec::KvCodec::Create(*p);
    REQUIRE(k.ok());
    return new codec::KvCodec(*std::move(k));
  }();
  return *c;
}

double MetricValue(const std::string& metrics_address, const std::string& name,
                   const std::map<std::string, std::string>& labels) {
  const std::string body = ctx::testing::HttpGet(metrics_address, "/metrics");
  std::istringstream in(body);
  std::string line;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, name.size(), name) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      match &= line.find(k + "=\"" + v + "\"") != std::string::npos;
    }
    if (!match) continue;
    sum += std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
  }
  return sum;
}

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() > end) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

BlackHole::BlackHole() {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd_ >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(::listen(fd_, 64) == 0);  // the kernel completes handshakes; nobody ever reads
  socklen_t len = sizeof(a);
  REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  port_ = ntohs(a.sin_port);
}

BlackHole::~BlackHole() {
  if (fd_ >= 0) ::close(fd_);
}

std::string FindRedis() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/sbin"}) {
    const std::string p = std::string(dir) + "/redis-server";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::unique_ptr<ctx::testing::ChildProcess> StartRedis(int port, const std::string& dir) {
  auto p = std::make_unique<ctx::testing::ChildProcess>(std::vector<std::string>{
      FindRedis(), "--port", std::to_string(port), "--bind", "127.0.0.1", "--dir", dir,
      "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"});
  for (int i = 0; i < 200; ++i) {
    auto line = p->ReadStdoutLine(std::chrono::milliseconds(100));
    if (line && line->find("Ready to accept connections") != std::string::npos) return p;
    if (p->WaitExit(std::chrono::milliseconds(0)).has_value()) break;
  }
  FAIL("redis-server did not start on port " << port << ": "
                                             << p->DrainStderr(std::chrono::milliseconds(100)));
  return nullptr;
}

long RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      long kib = 0;
      in >> kib;
      return kib;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

}  // namespace ctx::harden
