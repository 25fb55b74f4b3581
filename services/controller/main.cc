// ctxstream-controller: see README.md in this folder.
#include "common/rpc/server.h"
#include "services/controller/controller_service.h"

int main(int argc, char** argv) {
  ctx::rpc::ServerMain server_main("controller", argc, argv);
  ctx::controller::ControllerService service;
  return server_main.Serve({&service});
}
