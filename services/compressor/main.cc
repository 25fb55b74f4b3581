// ctxstream-compressor: see README.md in this folder.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/rpc/server.h"
#include "common/rpc/worker_pool.h"
#include "services/compressor/batching_scorer.h"
#include "services/compressor/compressor_service.h"
#include "services/compressor/lingua_engine.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, model_dir, "models/tiny-lingua2",
          "LLMLingua-2 classifier checkpoint directory (config.json, safetensors, tokenizer).");
ABSL_FLAG(std::string, target_tokenizer, "models/tiny-llama/tokenizer.model",
          "sentencepiece model of the target LM: counts tokens for rate / target_token.");
ABSL_FLAG(int32_t, compute_threads, 1, "Classifier forwards that may run at the same time.");
ABSL_FLAG(int32_t, max_batch_chunks, 50,
          "Most chunks (<= 512 pieces each, from any requests) in one classifier forward; "
          "1 disables batching.");
ABSL_FLAG(int32_t, batch_window_us, 2000,
          "How long an idle classifier waits after the first pending chunk for more to batch.");
ABSL_FLAG(int32_t, request_threads, 8,
          "Requests processed at once (tokenising, merging; they share the classifier batches).");
ABSL_FLAG(
    int32_t, max_queue, 64,
    "Requests waiting for a request thread; beyond this Compress answers RESOURCE_EXHAUSTED.");

namespace {

namespace fs = std::filesystem;

// A relative path is looked up from the working directory, then from the directories above
// the executable (build/bin/ctxstream-compressor -> the repo root), so the defaults work
// both from the repo root and from a test's working directory.
std::string ResolvePath(const std::string& path) {
  std::error_code ec;
  if (path.empty() || fs::path(path).is_absolute() || fs::exists(path, ec)) return path;
  fs::path dir = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return path;
  for (dir = dir.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
    if (fs::exists(dir / path, ec)) return (dir / path).string();
  }
  return path;
}

absl::Status CheckPositive(const char* name, int32_t v) {
  if (v >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", name, "=", v, " must be at least 1"));
}

}  // namespace

int main(int argc, char** argv) {
  ctx::rpc::ServerMain server_main("compressor", argc, argv);
  for (const auto& [name, v] :
       {std::pair<const char*, int32_t>{"compute_threads", absl::GetFlag(FLAGS_compute_threads)},
        {"max_batch_chunks", absl::GetFlag(FLAGS_max_batch_chunks)},
        {"request_threads", absl::GetFlag(FLAGS_request_threads)},
        {"max_queue", absl::GetFlag(FLAGS_max_queue)}}) {
    if (absl::Status s = CheckPositive(name, v); !s.ok()) return server_main.Fail(s);
  }
  if (absl::GetFlag(FLAGS_batch_window_us) < 0) {
    return server_main.Fail(absl::InvalidArgumentError("--batch_window_us must be >= 0"));
  }

  const int32_t max_batch = absl::GetFlag(FLAGS_max_batch_chunks);
  const std::string model_dir = ResolvePath(absl::GetFlag(FLAGS_model_dir));
  const std::string tokenizer_path = ResolvePath(absl::GetFlag(FLAGS_target_tokenizer));
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  const std::string engine_path = (exe.parent_path() / "libctx_lingua_engine.so").string();
  auto engine =
      ctx::compressor::LoadLinguaEngine(engine_path, model_dir, tokenizer_path, max_batch);
  if (!engine.ok()) return server_main.Fail(engine.status());
  spdlog::debug("compressor: model {} ({}), token counts by {}", model_dir, (*engine)->Describe(),
                tokenizer_path);

  ctx::compressor::BatchingOptions batching;
  batching.compute_threads = absl::GetFlag(FLAGS_compute_threads);
  batching.max_batch_chunks = max_batch;
  batching.batch_window = std::chrono::microseconds(absl::GetFlag(FLAGS_batch_window_us));
  const ctx::compressor::LinguaEngine* eng = engine->get();
  ctx::compressor::BatchingScorer batcher(
      [eng](std::span<const std::vector<int32_t>> seqs) { return eng->Forward(seqs); }, batching);
  ctx::rpc::WorkerPool pool(static_cast<size_t>(absl::GetFlag(FLAGS_request_threads)),
                            static_cast<size_t>(absl::GetFlag(FLAGS_max_queue)));
  ctx::compressor::CompressorService service(eng, &batcher, &pool);
  return server_main.Serve({&service});
}
