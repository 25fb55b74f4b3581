// ctxstream-kvcache: see README.md in this folder.
#include "common/rpc/server.h"
#include "services/kvcache/kvcache_service.h"

int main(int argc, char** argv) {
  ctx::rpc::ServerMain server_main("kvcache", argc, argv);
  ctx::kvcache::KvCacheService service;
  return server_main.Serve({&service});
}
