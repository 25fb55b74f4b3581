// ctxstream-inference: see README.md in this folder.
#include "common/rpc/server.h"
#include "services/inference/inference_service.h"

int main(int argc, char** argv) {
  ctx::rpc::ServerMain server_main("inference", argc, argv);
  ctx::inference::InferenceService service;
  return server_main.Serve({&service});
}
