// The controller service on 127.0.0.1 over in-process fake backends (fakes.h): one fake
// inference replica, one fake kvcache, an in-memory registry; API keys ka -> alice and
// kb -> bob, no anonymous access. Shared by the service and client-library tests.
#pragma once

#include <memory>
#include <string>

#include "grpcpp/server.h"
#include "services/controller/context_registry.h"
#include "services/controller/controller_service.h"
#include "services/controller/query_engine.h"
#include "tests/controller/fakes.h"

namespace ctx::testing {

struct FakeFront {
  FakeFront();
  ~FakeFront();

  FakeInference inf;
  FakeKvCache kv;
  std::unique_ptr<FakeServer> inf_server, kv_server;
  std::unique_ptr<controller::InferenceSet> inference;
  std::unique_ptr<controller::KvCacheSet> kvcache;
  std::unique_ptr<controller::ContextRegistry> registry;
  std::unique_ptr<controller::QueryEngine> engine;
  std::unique_ptr<controller::ControllerService> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;  // 127.0.0.1:port of the controller service
};

}  // namespace ctx::testing
