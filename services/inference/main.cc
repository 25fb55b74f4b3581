// ctxstream-inference: see README.md in this folder.
#include <cblas.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/codec/profile.h"
#include "common/model/blas_setup.h"
#include "common/model/perf.h"
#include "common/rpc/server.h"
#include "services/inference/inference_service.h"
#include "services/inference/kv_import.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, model_dir, "models/tiny-llama", "Hugging Face Llama model directory.");
ABSL_FLAG(std::string, codec_profile, "",
          "KV codec profile file (default: <model_dir>/kvcodec.profile when it exists; without "
          "one, only chunks that carry their own tables decode).");
ABSL_FLAG(int32_t, compute_threads, 1, "Worker threads running forward passes.");
ABSL_FLAG(int32_t, blas_threads, 1,
          "OpenBLAS threads per forward pass (parallelism comes from --compute_threads). On the "
          "shared 2-vCPU build VM, 2 BLAS threads made a 1024-token prefill 7-10x slower "
          "(8-12 s vs 1.2 s) than 1.");
ABSL_FLAG(int32_t, max_queue, 64, "Requests waiting for a worker before RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_inbound_kv_bytes, 64 << 20,
          "Per Generate call: KV part bytes received from the caller and not yet processed "
          "before the server stops reading the stream (gRPC flow control pushes back).");
ABSL_FLAG(bool, measure_speed, true,
          "Measure prefill tok/s (128, 512 tokens) and decode s/token in the background at "
          "start-up; GetModelInfo reports them once ready.");

namespace {

absl::StatusOr<ctx::codec::KvCodec> LoadCodec(const ctx::model::Model& model,
                                              const std::string& model_dir) {
  std::string path = absl::GetFlag(FLAGS_codec_profile);
  const bool explicit_path = !path.empty();
  if (!explicit_path) path = model_dir + "/kvcodec.profile";
  if (!std::filesystem::exists(path)) {
    if (explicit_path) {
      return absl::FailedPreconditionError(absl::StrCat("codec profile ", path, " not found"));
    }
    return ctx::codec::KvCodec::CreateDefault(ctx::inference::CodecFingerprint(model),
                                              ctx::inference::CodecGeometry(model));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  absl::StatusOr<ctx::codec::CodecProfile> profile = ctx::codec::ParseProfile(buf.str());
  if (!profile.ok()) {
    return absl::Status(profile.status().code(),
                        absl::StrCat("codec profile ", path, ": ", profile.status().message()));
  }
  if (profile->fingerprint != ctx::inference::CodecFingerprint(model)) {
    return absl::FailedPreconditionError(
        absl::StrCat("codec profile ", path, " was calibrated for another model"));
  }
  return ctx::codec::KvCodec::Create(*std::move(profile));
}

// A relative --model_dir that does not exist under the working directory is also looked up
// next to the binary's tree (<exe dir>/.., <exe dir>/../..), so build/bin/ctxstream-inference
// finds the repository's models/ from any working directory.
std::string ResolveModelDir(const std::string& dir) {
  namespace fs = std::filesystem;
  if (dir.empty() || fs::path(dir).is_absolute() || fs::exists(dir)) return dir;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return dir;
  for (fs::path base = exe.parent_path(); !base.empty() && base != base.root_path();
       base = base.parent_path()) {
    if (fs::exists(base / dir / "config.json")) return (base / dir).string();
  }
  return dir;
}

}  // namespace

int main(int argc, char** argv) {
  ctx::model::ReexecWithAvx512BlasIfSupported(argv);
  ctx::rpc::ServerMain server_main("inference", argc, argv);
  openblas_set_num_threads(std::max(1, absl::GetFlag(FLAGS_blas_threads)));
  const std::string model_dir = ResolveModelDir(absl::GetFlag(FLAGS_model_dir));
  auto model = ctx::model::Model::Load(model_dir);
  if (!model.ok()) return server_main.Fail(model.status());
  auto tokenizer = ctx::tokenizer::LoadTokenizer(model_dir);
  if (!tokenizer.ok()) return server_main.Fail(tokenizer.status());
  auto codec = LoadCodec(**model, model_dir);
  if (!codec.ok()) return server_main.Fail(codec.status());

  ctx::inference::ServiceOptions options;
  options.compute_threads = absl::GetFlag(FLAGS_compute_threads);
  options.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.max_inbound_kv_bytes =
      static_cast<size_t>(std::max<int64_t>(1, absl::GetFlag(FLAGS_max_inbound_kv_bytes)));
  ctx::inference::InferenceService service(*std::move(model), *std::move(tokenizer),
                                           *std::move(codec), options);
  server_main.OnShutdown([&service] { service.CancelAll(); });

  if (absl::GetFlag(FLAGS_measure_speed)) {
    // Runs beside the server (which comes up first); a shutdown simply ends the process.
    std::thread([&service] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const int lengths[] = {128, 512};
      auto perf = ctx::model::MeasurePerf(service.model(), lengths, /*decode_context=*/128,
                                          /*decode_steps=*/8);
      if (perf.ok()) {
        service.SetPerf(*perf);
        spdlog::info(
            "measured prefill {:.0f} tok/s @128, {:.0f} tok/s @512; decode {:.2f} ms/token",
            perf->prefill[0].tokens_per_second, perf->prefill[1].tokens_per_second,
            perf->decode_seconds_per_token * 1e3);
      } else {
        spdlog::warn("speed measurement failed: {}", perf.status().ToString());
      }
    }).detach();
  }
  return server_main.Serve({&service});
}
