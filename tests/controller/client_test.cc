// The C++ client library (services/controller/client) against the controller service running
// in-process over fake backends: API keys, register progress, query events, get/list/delete,
// errors as absl::Status with the server's code, and the deadline reaching the backends.
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "services/controller/client/controller_client.h"
#include "tests/controller/fake_front.h"

namespace ctx::testing {
namespace {

namespace pb = ctxstream::v1;

// FakeFront (fake_front.h) and a client library connection per API key.
struct ClientFront : FakeFront {
  std::unique_ptr<client::ControllerClient> Client(const std::string& key) {
    client::ClientOptions o;
    o.target = address;
    o.api_key = key;
    o.stream_timeout_seconds = 20;
    auto c = client::ControllerClient::Connect(o);
    REQUIRE(c.ok());
    return *std::move(c);
  }
};

TEST_CASE("client: register with progress, query with callbacks, get/list/delete") {
  ClientFront f;
  auto alice = f.Client("ka");
  int progress_events = 0;
  std::string last_message;
  client::RegisterOptions ro;
  ro.name = "doc";
  absl::StatusOr<client::Registered> reg =
      alice->Register(Words(600), ro, [&](const pb::RegisterProgress& p) {
        ++progress_events;
        last_message = p.message();
      });
  REQUIRE(reg.ok());
  CHECK(reg->context_id.size() == 32);
  CHECK(reg->tokens == 601);  // BOS + 600 words
  CHECK(reg->kv_ready);
  CHECK(progress_events >= 2);
  CHECK(reg->message == last_message);

  int plans = 0, tokens = 0;
  client::QueryCallbacks cb;
  cb.on_plan = [&](const pb::Plan&) { ++plans; };
  cb.on_token = [&](const pb::GeneratedToken&) { ++tokens; };
  absl::StatusOr<client::Answer> a = alice->Query(client::Ask(reg->context_id, "q ?", 3), cb);
  REQUIRE(a.ok());
  CHECK(plans == 1);
  CHECK(tokens == 3);
  CHECK(a->tokens.size() == 3);
  CHECK(a->answer == " t0 t1 t2");
  CHECK(a->result.answer() == a->answer);
  CHECK(a->plan.options_size() >= 2);
  CHECK(a->result.timings().ttft_seconds() > 0);

  absl::StatusOr<pb::ContextInfo> info = alice->Get(reg->context_id);
  REQUIRE(info.ok());
  CHECK(info->name() == "doc");
  CHECK(info->tokens() == 601);
  absl::StatusOr<std::vector<pb::ContextInfo>> list = alice->List();
  REQUIRE(list.ok());
  REQUIRE(list->size() == 1);
  CHECK((*list)[0].context_id() == reg->context_id);

  // Another tenant sees nothing; a wrong key is UNAUTHENTICATED, named by call.
  auto bob = f.Client("kb");
  CHECK(bob->Get(reg->context_id).status().code() == absl::StatusCode::kNotFound);
  CHECK(bob->List()->empty());
  CHECK(bob->Query(client::Ask(reg->context_id, "q ?")).status().code() ==
        absl::StatusCode::kNotFound);
  auto mallory = f.Client("wrong");
  const absl::Status bad = mallory->List().status();
  CHECK(bad.code() == absl::StatusCode::kUnauthenticated);
  CHECK(bad.message().find("Controller.ListContexts") != absl::string_view::npos);

  absl::StatusOr<bool> deleted = alice->Delete(reg->context_id);
  REQUIRE(deleted.ok());
  CHECK(*deleted);
  CHECK(alice->Get(reg->context_id).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("client: the query deadline reaches the backends and expires as DEADLINE_EXCEEDED") {
  ClientFront f;
  auto alice = f.Client("ka");
  absl::StatusOr<client::Registered> reg = alice->Register(Words(300));
  REQUIRE(reg.ok());
  {
    std::lock_guard<std::mutex> lock(f.inf.mu);
    f.inf.deadlines.clear();  // the register's calls
  }
  f.inf.slow = true;  // tokens 5 ms apart for 10 s, until cancelled
  const auto before = std::chrono::system_clock::now();
  absl::StatusOr<client::Answer> a =
      alice->Query(client::Ask(reg->context_id, "q ?", 2000), {}, /*timeout_seconds=*/1.0);
  CHECK(a.status().code() == absl::StatusCode::kDeadlineExceeded);
  std::lock_guard<std::mutex> lock(f.inf.mu);
  REQUIRE(!f.inf.deadlines.empty());
  // Every outbound call's deadline is no later than the client's (1 s after `before`, plus
  // the time it took to send the request).
  for (const TimePoint& d : f.inf.deadlines) CHECK(d <= before + std::chrono::seconds(2));
}

TEST_CASE("client: TLS options with a missing CA file fail at Connect, naming the file") {
  client::ClientOptions o;
  o.tls_ca_file = "/nonexistent/ca.pem";
  auto c = client::ControllerClient::Connect(o);
  CHECK(!c.ok());
  CHECK(c.status().message().find("/nonexistent/ca.pem") != absl::string_view::npos);
  client::ClientOptions half;
  half.tls_cert_file = "/tmp/cert.pem";
  CHECK(client::ControllerClient::Connect(half).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ctx::testing
