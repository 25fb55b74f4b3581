// The gRPC front: API keys -> tenants, tenant isolation on every RPC, streaming through the
// queued write reactor. The controller runs in-process over fake backends.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "common/rpc/channel.h"
#include "ctxstream/v1/controller.grpc.pb.h"
#include "services/controller/api_keys.h"
#include "services/controller/context_registry.h"
#include "tests/controller/fake_front.h"

namespace ctx::testing {
namespace {

namespace pb = ctxstream::v1;
using controller::ApiKeys;
using controller::ContextRegistry;

TEST_CASE("API keys from a file and a flag") {
  auto keys =
      ApiKeys::Parse("# comment\n\nk1 alice\n  k2\tbob  \n", "keys.txt", "k3:carol, k4:alice",
                     /*allow_anonymous=*/false);
  REQUIRE(keys.ok());
  CHECK(keys->size() == 4);
  CHECK(*keys->TenantFor("k1") == "alice");
  CHECK(*keys->TenantFor("k2") == "bob");
  CHECK(*keys->TenantFor("k3") == "carol");
  CHECK(*keys->TenantFor("k4") == "alice");
  CHECK(keys->TenantFor("nope").status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(keys->TenantFor(std::nullopt).status().code() == absl::StatusCode::kUnauthenticated);

  auto anon = ApiKeys::Parse("", "", "k:t", true);
  REQUIRE(anon.ok());
  CHECK(*anon->TenantFor(std::nullopt) == "default");
  CHECK(anon->TenantFor("bad").status().code() == absl::StatusCode::kUnauthenticated);

  auto bad = ApiKeys::Parse("k1 alice extra\n", "keys.txt", "", true);
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(bad.status().message().find("keys.txt:1") != std::string::npos);
  CHECK(!ApiKeys::Parse("", "", "k1:alice,k1:bob", true).ok());  // one key, two tenants
  CHECK(!ApiKeys::Parse("", "", "k1:../etc", true).ok());        // tenant names are plain
  CHECK(!ApiKeys::Parse("", "", "novalue", true).ok());
  CHECK(ApiKeys::Load("/nonexistent/keys", "", true).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("the registry persists records under the state directory") {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("ctx_registry_" + ContextRegistry::NewContextId());
  std::string id = ContextRegistry::NewContextId();
  CHECK(id.size() == 32);
  CHECK(id != ContextRegistry::NewContextId());
  {
    auto reg = ContextRegistry::Open(dir);
    REQUIRE(reg.ok());
    controller::ContextRecord r;
    r.context_id = id;
    r.tenant = "alice";
    r.text = "hello \"world\"\n";
    r.tokens = {1, 5, 9};
    r.kv_ready = true;
    r.kv_bytes = 1234;
    REQUIRE((*reg)->Put(r).ok());
    controller::ContextRecord bad = r;
    bad.context_id = "../../x";
    CHECK(!(*reg)->Put(bad).ok());
  }
  {
    auto reg = ContextRegistry::Open(dir);
    REQUIRE(reg.ok());
    auto r = (*reg)->Get("alice", id);
    REQUIRE(r.has_value());
    CHECK(r->text == "hello \"world\"\n");
    CHECK(r->tokens == std::vector<int32_t>{1, 5, 9});
    CHECK(r->kv_bytes == 1234);
    CHECK(!(*reg)->Get("bob", id).has_value());
    CHECK((*reg)->Delete("bob", id).code() == absl::StatusCode::kNotFound);
    REQUIRE((*reg)->Delete("alice", id).ok());
  }
  {
    auto reg = ContextRegistry::Open(dir);
    REQUIRE(reg.ok());
    CHECK((*reg)->size() == 0);
  }
  std::ofstream(std::filesystem::path(dir) / "contexts" / "abc.json") << "{not json";
  auto broken = ContextRegistry::Open(dir);
  CHECK(broken.status().code() == absl::StatusCode::kDataLoss);
  CHECK(broken.status().message().find("abc.json") != std::string::npos);
  std::filesystem::remove_all(dir);
}

// FakeFront (fake_front.h) and a stub to it.
struct Front : FakeFront {
  Front() : stub(pb::Controller::NewStub(*rpc::MakeChannel(address))) {}

  static void Key(grpc::ClientContext* ctx, const std::string& key) {
    if (!key.empty()) ctx->AddMetadata("x-api-key", key);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  }

  grpc::Status Register(const std::string& key, std::string* id) {
    grpc::ClientContext ctx;
    Key(&ctx, key);
    pb::RegisterContextRequest req;
    req.set_text(Words(600));
    auto reader = stub->RegisterContext(&ctx, req);
    pb::RegisterProgress p;
    while (reader->Read(&p)) *id = p.context_id();
    return reader->Finish();
  }

  grpc::Status Query(const std::string& key, const std::string& id,
                     std::vector<pb::QueryEvent>* events) {
    grpc::ClientContext ctx;
    Key(&ctx, key);
    pb::QueryRequest req;
    req.set_context_id(id);
    req.set_question("q ?");
    req.set_force_level(-1);
    auto reader = stub->Query(&ctx, req);
    pb::QueryEvent e;
    while (reader->Read(&e)) events->push_back(e);
    return reader->Finish();
  }

  std::unique_ptr<pb::Controller::Stub> stub;
};

TEST_CASE("the service streams register progress and query events for the key's tenant") {
  Front f;
  std::string id;
  REQUIRE(f.Register("ka", &id).ok());
  REQUIRE(id.size() == 32);
  std::vector<pb::QueryEvent> events;
  grpc::Status s = f.Query("ka", id, &events);
  INFO(s.error_message());
  REQUIRE(s.ok());
  REQUIRE(events.size() == 5);  // plan, 3 tokens, result
  CHECK(events.front().has_plan());
  CHECK(events.back().result().answer() == " t0 t1 t2");
}

TEST_CASE("a bad or missing key is UNAUTHENTICATED on every RPC") {
  Front f;
  for (const std::string key : {"wrong", ""}) {
    INFO("key '" << key << "'");
    std::string id;
    CHECK(f.Register(key, &id).error_code() == grpc::StatusCode::UNAUTHENTICATED);
    std::vector<pb::QueryEvent> events;
    CHECK(f.Query(key, "00", &events).error_code() == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(events.empty());
    grpc::ClientContext c1;
    Front::Key(&c1, key);
    pb::ListContextsResponse list;
    CHECK(f.stub->ListContexts(&c1, {}, &list).error_code() == grpc::StatusCode::UNAUTHENTICATED);
    grpc::ClientContext c2;
    Front::Key(&c2, key);
    pb::ContextInfo info;
    CHECK(f.stub->GetContext(&c2, {}, &info).error_code() == grpc::StatusCode::UNAUTHENTICATED);
    grpc::ClientContext c3;
    Front::Key(&c3, key);
    pb::ControllerDeleteContextResponse dr;
    CHECK(f.stub->DeleteContext(&c3, {}, &dr).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }
}

TEST_CASE("another tenant's context is NOT_FOUND for get, list, query and delete") {
  Front f;
  std::string id;
  REQUIRE(f.Register("ka", &id).ok());

  grpc::ClientContext c1;
  Front::Key(&c1, "kb");
  pb::GetContextRequest g;
  g.set_context_id(id);
  pb::ContextInfo info;
  CHECK(f.stub->GetContext(&c1, g, &info).error_code() == grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext c2;
  Front::Key(&c2, "kb");
  pb::ListContextsResponse list;
  REQUIRE(f.stub->ListContexts(&c2, {}, &list).ok());
  CHECK(list.contexts_size() == 0);

  std::vector<pb::QueryEvent> events;
  CHECK(f.Query("kb", id, &events).error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(events.empty());

  grpc::ClientContext c3;
  Front::Key(&c3, "kb");
  pb::ControllerDeleteContextRequest d;
  d.set_context_id(id);
  pb::ControllerDeleteContextResponse dr;
  CHECK(f.stub->DeleteContext(&c3, d, &dr).error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(f.kv.deleted.empty());

  // The owner still sees it, and can delete it (kvcache too, under the owner's tenant).
  grpc::ClientContext c4;
  Front::Key(&c4, "ka");
  pb::ListContextsResponse mine;
  REQUIRE(f.stub->ListContexts(&c4, {}, &mine).ok());
  REQUIRE(mine.contexts_size() == 1);
  CHECK(mine.contexts(0).context_id() == id);
  CHECK(mine.contexts(0).kv_ready());
  grpc::ClientContext c5;
  Front::Key(&c5, "ka");
  REQUIRE(f.stub->DeleteContext(&c5, d, &dr).ok());
  CHECK(dr.deleted());
  REQUIRE(f.kv.deleted.size() == 1);
  CHECK(f.kv.deleted[0] == "alice/" + id);
}

TEST_CASE("a client that cancels its query cancels the inference call") {
  Front f;
  std::string id;
  REQUIRE(f.Register("ka", &id).ok());
  f.inf.slow = true;
  grpc::ClientContext ctx;
  Front::Key(&ctx, "ka");
  pb::QueryRequest req;
  req.set_context_id(id);
  req.set_question("q ?");
  req.set_max_tokens(2000);
  req.set_force_level(-1);
  auto reader = f.stub->Query(&ctx, req);
  pb::QueryEvent e;
  REQUIRE(reader->Read(&e));
  CHECK(e.has_plan());
  REQUIRE(reader->Read(&e));
  CHECK(e.has_token());
  ctx.TryCancel();
  while (reader->Read(&e)) {
  }
  CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
  // The engine notices at its next write and cancels Generate: the fake sees it.
  for (int i = 0; i < 500 && !f.inf.saw_cancel; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(f.inf.saw_cancel);
}

}  // namespace
}  // namespace ctx::testing
