// ctxstream-compressor: see README.md in this folder.
#include "common/rpc/server.h"
#include "services/compressor/compressor_service.h"

int main(int argc, char** argv) {
  ctx::rpc::ServerMain server_main("compressor", argc, argv);
  ctx::compressor::CompressorService service;
  return server_main.Serve({&service});
}
