#include "tests/controller/fake_front.h"

#include <chrono>
#include <utility>
#include <vector>

#include "common/rpc/channel.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "services/controller/api_keys.h"

namespace ctx::testing {

namespace pb = ctxstream::v1;

FakeFront::FakeFront() {
  inf_server = std::make_unique<FakeServer>(&inf);
  kv_server = std::make_unique<FakeServer>(&kv);
  std::vector<controller::InferenceSet::Replica> ir;
  ir.push_back(
      {inf_server->address(), pb::Inference::NewStub(*rpc::MakeChannel(inf_server->address()))});
  inference = std::make_unique<controller::InferenceSet>(std::move(ir));
  std::vector<controller::KvCacheSet::Replica> kr;
  kr.push_back(
      {kv_server->address(), pb::KvCache::NewStub(*rpc::MakeChannel(kv_server->address()))});
  kvcache = std::make_unique<controller::KvCacheSet>(std::move(kr));
  registry = *controller::ContextRegistry::Open("");
  engine = std::make_unique<controller::QueryEngine>(
      controller::Backends{inference.get(), kvcache.get(), nullptr}, registry.get(),
      controller::EngineOptions{});
  service = std::make_unique<controller::ControllerService>(
      engine.get(), *controller::ApiKeys::Parse("", "", "ka:alice,kb:bob", false), 4, 16);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service.get());
  server = builder.BuildAndStart();
  address = "127.0.0.1:" + std::to_string(port);
}

FakeFront::~FakeFront() {
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

}  // namespace ctx::testing
