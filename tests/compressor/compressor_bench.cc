// Latency of Compress against a running ctxstream-compressor (not a test):
//   compressor_bench <host:port> <text file> [concurrent=1] [rounds=5] [rate=0.5]
// Each round sends `concurrent` identical requests at once and waits for all; prints the
// median round wall time and the server-side compress_seconds.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ctxstream/v1/compressor.grpc.pb.h"
#include "grpcpp/create_channel.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <host:port> <text file> [concurrent] [rounds] [rate]\n",
                 argv[0]);
    return 2;
  }
  std::ifstream f(argv[2]);
  if (!f) {
    std::fprintf(stderr, "cannot read %s\n", argv[2]);
    return 1;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  const int concurrent = argc > 3 ? std::atoi(argv[3]) : 1;
  const int rounds = argc > 4 ? std::atoi(argv[4]) : 5;
  const float rate = argc > 5 ? std::strtof(argv[5], nullptr) : 0.5f;
  auto stub = ctxstream::v1::Compressor::NewStub(
      grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials()));
  ctxstream::v1::CompressRequest req;
  req.add_contexts(ss.str());
  req.set_rate(rate);

  std::vector<double> walls;
  double server_s = 0;
  uint32_t tokens = 0, chunks = 0;
  for (int r = 0; r < rounds + 1; ++r) {  // round 0 warms up
    std::vector<std::thread> threads;
    std::vector<ctxstream::v1::CompressResponse> resps(static_cast<size_t>(concurrent));
    std::vector<grpc::Status> st(static_cast<size_t>(concurrent));
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < concurrent; ++i) {
      threads.emplace_back([&, i] {
        grpc::ClientContext ctx;
        st[static_cast<size_t>(i)] = stub->Compress(&ctx, req, &resps[static_cast<size_t>(i)]);
      });
    }
    for (auto& t : threads) t.join();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const auto& s : st) {
      if (!s.ok()) {
        std::fprintf(stderr, "Compress failed: %s\n", s.error_message().c_str());
        return 1;
      }
    }
    if (r == 0) continue;
    walls.push_back(wall);
    for (const auto& resp : resps) server_s += resp.compress_seconds();
    tokens = resps[0].origin_tokens();
    chunks = resps[0].num_chunks();
  }
  std::sort(walls.begin(), walls.end());
  std::printf(
      "tokens=%u chunks=%u concurrent=%d rounds=%d median_round_ms=%.1f "
      "min_round_ms=%.1f mean_server_ms=%.1f\n",
      tokens, chunks, concurrent, rounds, 1e3 * walls[walls.size() / 2], 1e3 * walls[0],
      1e3 * server_s / (rounds * concurrent));
  return 0;
}
