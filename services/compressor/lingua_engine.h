// The LLMLingua-2 model and pipeline (common/lingua) behind a narrow interface, built as a
// separate shared object (libctx_lingua_engine.so, CMake recipe ctx_add_sentencepiece_module)
// and opened with common/tokenizer's module loader (dlopen RTLD_LOCAL | RTLD_DEEPBIND).
//
// Why: Debian's libsentencepiece (used by ctx_lingua) bundles and exports its own
// protobuf-lite 3.14, while gRPC needs libprotobuf 3.21; common/tokenizer/module_loader.h has
// the details. Nothing crosses the boundary but std, absl (shared) and lingua's plain structs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/lingua/chunk_scorer.h"
#include "common/lingua/prompt_compressor.h"

namespace ctx::compressor {

class LinguaEngine {
 public:
  virtual ~LinguaEngine() = default;

  // One padded classifier forward (length-sorted, <= max_batch rows per forward): p(keep) at
  // every position of every sequence. Thread-safe.
  virtual absl::StatusOr<std::vector<std::vector<float>>> Forward(
      std::span<const std::vector<int32_t>> seqs) const = 0;

  // PromptCompressor::Compress with `scorer` for the classifier and the target tokenizer for
  // counts; `reference_compat` selects CompressorConfig::ReferenceCompat(). Thread-safe.
  virtual absl::StatusOr<lingua::CompressResult> Compress(
      std::span<const std::string> contexts, const lingua::CompressOptions& options,
      bool reference_compat, const lingua::ChunkScorer* scorer) const = 0;

  // "hidden 256, 4 layers" (for the start-up log).
  virtual std::string Describe() const = 0;
};

// Loads libctx_lingua_engine.so from `library_path` (absolute, or looked up next to the
// executable), then the model (LinguaModel::Load) and the
// token counter (SentencePieceTokenCounter::Load). Errors name the path that failed.
absl::StatusOr<std::unique_ptr<LinguaEngine>> LoadLinguaEngine(const std::string& library_path,
                                                               const std::string& model_dir,
                                                               const std::string& tokenizer_path,
                                                               int max_batch);

// The factory the shared object exports (C linkage, so dlsym finds it by this name).
using CreateLinguaEngineFn = LinguaEngine* (*)(const char* model_dir, const char* tokenizer_path,
                                               int max_batch, absl::Status* error);
inline constexpr const char* kCreateLinguaEngineSymbol = "ctx_create_lingua_engine";

}  // namespace ctx::compressor
