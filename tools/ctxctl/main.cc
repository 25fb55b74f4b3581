// ctxctl: command-line client for a ctxstream cluster.
//
//   ctxctl health ADDRESS...      grpc.health.v1 status of each server; exit 1 unless all SERVING
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/rpc/channel.h"
#include "grpc/health/v1/health.grpc.pb.h"

ABSL_FLAG(double, timeout_seconds, 5.0, "Deadline of each call.");

namespace {

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::duration<double>(absl::GetFlag(FLAGS_timeout_seconds)));
}

int Health(const std::vector<std::string>& addresses) {
  int bad = 0;
  for (const std::string& address : addresses) {
    auto channel = ctx::rpc::MakeChannel(address);
    if (!channel.ok()) {
      std::fprintf(stderr, "ctxctl: %s\n", std::string(channel.status().message()).c_str());
      return 2;
    }
    auto stub = grpc::health::v1::Health::NewStub(*channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    grpc::health::v1::HealthCheckResponse resp;
    const grpc::Status s = stub->Check(&ctx, {}, &resp);
    const std::string status =
        s.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status())
               : "UNREACHABLE (" + s.error_message() + ")";
    std::printf("%-24s %s\n", address.c_str(), status.c_str());
    if (!s.ok() || resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) ++bad;
  }
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ctxctl health ADDRESS...");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() >= 3 && std::string(args[1]) == "health") {
    return Health(std::vector<std::string>(args.begin() + 2, args.end()));
  }
  std::fprintf(stderr, "usage: ctxctl health ADDRESS...\n");
  return 2;
}
