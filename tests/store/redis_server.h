// Test helper: a real redis-server child process on a free loopback port.
#pragma once

#include <sys/types.h>

#include <string>

namespace ctx::store::testing {

// Empty when redis-server is not on PATH (tests then skip with a WARN).
std::string FindRedisServer();

// Binds port 0 on 127.0.0.1, reads the port, closes the socket.
int PickFreePort();

class RedisServer {
 public:
  explicit RedisServer(int port) : port_(port) {}
  ~RedisServer() { Stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts redis-server and waits (≤ 5 s) until it answers PING. False on failure.
  bool Start();
  // SIGTERM, then SIGKILL after 2 s; reaps the child.
  void Stop();
  int port() const { return port_; }

 private:
  int port_;
  pid_t pid_ = -1;
};

}  // namespace ctx::store::testing
