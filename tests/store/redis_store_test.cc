// RedisStore against a real redis-server child on a free loopback port: conformance,
// reconnect after a restart, unreachable server, blob limit, evictions reported from Redis.
#include "common/store/redis_store.h"

#include <hiredis/hiredis.h>

#include <catch2/catch.hpp>
#include <memory>

#include "tests/store/conformance.h"
#include "tests/store/redis_server.h"

using namespace ctx::store;
using ctx::store::testing::FindRedisServer;
using ctx::store::testing::PickFreePort;
using ctx::store::testing::RedisServer;
using ctx::store::testing::TestBytes;
using ctx::store::testing::TestKey;

namespace {

bool RedisMissing() {
  if (!FindRedisServer().empty()) return false;
  WARN("redis-server is not installed (not on PATH): Redis store tests SKIPPED");
  return true;
}

// One server for the whole binary (conformance sections re-run the test case many times).
RedisServer* SharedServer() {
  static std::unique_ptr<RedisServer> server = [] {
    auto s = std::make_unique<RedisServer>(PickFreePort());
    if (!s->Start()) s.reset();
    return s;
  }();
  return server.get();
}

RedisStore::Options OptionsFor(int port, const std::string& prefix) {
  RedisStore::Options o;
  o.port = port;
  o.prefix = prefix;
  o.connect_timeout_ms = 500;
  o.command_timeout_ms = 2000;
  return o;
}

void RawCommand(int port, const char* cmd) {
  redisContext* c = redisConnect("127.0.0.1", port);
  REQUIRE(c != nullptr);
  REQUIRE(c->err == 0);
  auto* r = static_cast<redisReply*>(redisCommand(c, cmd));
  REQUIRE(r != nullptr);
  CHECK(r->type != REDIS_REPLY_ERROR);
  freeReplyObject(r);
  redisFree(c);
}

}  // namespace

TEST_CASE("redis store: conformance", "[store][redis]") {
  if (RedisMissing()) return;
  RedisServer* server = SharedServer();
  REQUIRE(server != nullptr);
  static int n = 0;
  ctx::store::testing::RunConformanceSuite([&]() -> std::unique_ptr<ChunkStore> {
    // A fresh key prefix per run gives an empty store on the shared server.
    auto s = RedisStore::Connect(OptionsFor(server->port(), "conf" + std::to_string(n++)));
    REQUIRE(s.ok());
    return std::move(*s);
  });
}

TEST_CASE("redis store: prefixes isolate deployments sharing one Redis", "[store][redis]") {
  if (RedisMissing()) return;
  RedisServer* server = SharedServer();
  REQUIRE(server != nullptr);
  auto a = RedisStore::Connect(OptionsFor(server->port(), "iso-a"));
  auto b = RedisStore::Connect(OptionsFor(server->port(), "iso-b"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE((*a)->Put(TestKey(1), "in a").ok());
  REQUIRE((*a)->PutManifest("t", "c", "m").ok());
  CHECK((*b)->Get(TestKey(1)).status().code() == absl::StatusCode::kNotFound);
  CHECK((*b)->ListManifests("t").value().empty());
  // Two clients with the same prefix share (like two kvcache replicas).
  auto a2 = RedisStore::Connect(OptionsFor(server->port(), "iso-a"));
  REQUIRE(a2.ok());
  CHECK((*a2)->Get(TestKey(1)).value() == "in a");
}

TEST_CASE("redis store: reconnects after redis-server restarts on the same port",
          "[store][redis]") {
  if (RedisMissing()) return;
  RedisServer server(PickFreePort());
  REQUIRE(server.Start());
  auto opened = RedisStore::Connect(OptionsFor(server.port(), "rc"));
  REQUIRE(opened.ok());
  RedisStore& store = **opened;
  REQUIRE(store.Put(TestKey(1), TestBytes(1000, 1)).ok());
  CHECK(store.connects() == 1);

  server.Stop();
  // Down: a clear UNAVAILABLE naming the address, no hang, no crash.
  auto down = store.Get(TestKey(1));
  CHECK(down.status().code() == absl::StatusCode::kUnavailable);
  CHECK(down.status().message().find("127.0.0.1:" + std::to_string(server.port())) !=
        absl::string_view::npos);
  CHECK(store.Put(TestKey(2), "x").code() == absl::StatusCode::kUnavailable);
  CHECK(store.GetMany(std::vector<BlobKey>{TestKey(1)})[0].status().code() ==
        absl::StatusCode::kUnavailable);

  REQUIRE(server.Start());  // same port; --save '' so the data is gone
  CHECK(store.Get(TestKey(1)).status().code() == absl::StatusCode::kNotFound);
  REQUIRE(store.Put(TestKey(3), TestBytes(2000, 3)).ok());
  CHECK(store.Get(TestKey(3)).value() == TestBytes(2000, 3));
  CHECK(store.connects() >= 2);

  // A restart between two calls on a live connection is retried transparently.
  server.Stop();
  REQUIRE(server.Start());
  const std::string p4 = "after second restart", p6 = TestBytes(5000, 6);
  const std::vector<ChunkStore::BlobWrite> writes = {{TestKey(4), p4}, {TestKey(6), p6}};
  REQUIRE(store.PutMany(writes).ok());  // pipelined, on a connection that died under it
  CHECK(store.Get(TestKey(6)).value() == p6);
  const std::vector<BlobKey> keys = {TestKey(4), TestKey(5)};
  auto many = store.GetMany(keys);
  CHECK(many[0].value() == "after second restart");
  CHECK(many[1].status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("redis store: unreachable server is UNAVAILABLE at connect", "[store][redis]") {
  const int port = PickFreePort();  // nothing listens there
  auto s = RedisStore::Connect(OptionsFor(port, "x"));
  CHECK(s.status().code() == absl::StatusCode::kUnavailable);
  CHECK(s.status().message().find(std::to_string(port)) != absl::string_view::npos);
}

TEST_CASE("redis store: blob over the per-blob limit is RESOURCE_EXHAUSTED", "[store][redis]") {
  if (RedisMissing()) return;
  RedisServer* server = SharedServer();
  REQUIRE(server != nullptr);
  RedisStore::Options o = OptionsFor(server->port(), "lim");
  o.max_blob_bytes = 1000;
  auto store = RedisStore::Connect(o);
  REQUIRE(store.ok());
  CHECK((*store)->Put(TestKey(1), std::string(1000, 'a')).ok());
  const absl::Status s = (*store)->Put(TestKey(2), std::string(1001, 'a'));
  CHECK(s.code() == absl::StatusCode::kResourceExhausted);
  CHECK(s.message().find("limit of 1000 bytes") != absl::string_view::npos);
  const std::string small(10, 's'), big(1001, 'b');
  const std::vector<ChunkStore::BlobWrite> batch = {{TestKey(3), small}, {TestKey(4), big}};
  CHECK((*store)->PutMany(batch).code() == absl::StatusCode::kResourceExhausted);
  CHECK_FALSE((*store)->Contains(TestKey(3)).value());
}

TEST_CASE("redis store: evictions by Redis' maxmemory are reported", "[store][redis]") {
  if (RedisMissing()) return;
  RedisServer server(PickFreePort());
  REQUIRE(server.Start());
  RawCommand(server.port(), "CONFIG SET maxmemory 4mb");
  RawCommand(server.port(), "CONFIG SET maxmemory-policy allkeys-lru");
  auto store = RedisStore::Connect(OptionsFor(server.port(), "ev"));
  REQUIRE(store.ok());
  for (uint32_t i = 0; i < 40; ++i) {
    REQUIRE((*store)->Put(TestKey(i), TestBytes(256 << 10, i)).ok());  // 10 MiB in total
  }
  const StoreStats s = (*store)->Stats();
  CHECK(s.evictions > 0);
  CHECK((*store)->Get(TestKey(39)).value() == TestBytes(256 << 10, 39));
}
