// The inside of libctx_lingua_engine.so: see lingua_engine.h for why it is a separate object.
#include "services/compressor/lingua_engine.h"

#include "absl/strings/str_cat.h"
#include "common/lingua/lingua_model.h"
#include "common/lingua/token_counter.h"

namespace ctx::compressor {
namespace {

class LinguaEngineImpl final : public LinguaEngine {
 public:
  LinguaEngineImpl(lingua::LinguaModel model, std::unique_ptr<lingua::TokenCounter> counter,
                   int max_batch)
      : model_(std::move(model)),
        counter_(std::move(counter)),
        forward_(model_.classifier.get(), max_batch) {}

  absl::StatusOr<std::vector<std::vector<float>>> Forward(
      std::span<const std::vector<int32_t>> seqs) const override {
    return forward_.KeepProbs(seqs);
  }

  absl::StatusOr<lingua::CompressResult> Compress(
      std::span<const std::string> contexts, const lingua::CompressOptions& options,
      bool reference_compat, const lingua::ChunkScorer* scorer) const override {
    const lingua::PromptCompressor pc(model_.tokenizer.get(), scorer, counter_.get(),
                                      reference_compat ? lingua::CompressorConfig::ReferenceCompat()
                                                       : lingua::CompressorConfig{});
    return pc.Compress(contexts, options);
  }

  std::string Describe() const override {
    const auto& c = model_.classifier->config();
    return absl::StrCat("hidden ", c.hidden_size, ", ", c.num_layers, " layers, vocab ",
                        c.vocab_size);
  }

 private:
  lingua::LinguaModel model_;
  std::unique_ptr<lingua::TokenCounter> counter_;
  lingua::ClassifierScorer forward_;
};

}  // namespace
}  // namespace ctx::compressor

extern "C" __attribute__((visibility("default"))) ctx::compressor::LinguaEngine*
ctx_create_lingua_engine(const char* model_dir, const char* tokenizer_path, int max_batch,
                         absl::Status* error) {
  auto model = ctx::lingua::LinguaModel::Load(model_dir);
  if (!model.ok()) {
    *error = absl::Status(model.status().code(),
                          absl::StrCat("--model_dir=", model_dir, ": ", model.status().message()));
    return nullptr;
  }
  auto counter = ctx::lingua::SentencePieceTokenCounter::Load(tokenizer_path);
  if (!counter.ok()) {
    *error = absl::Status(
        counter.status().code(),
        absl::StrCat("--target_tokenizer=", tokenizer_path, ": ", counter.status().message()));
    return nullptr;
  }
  return new ctx::compressor::LinguaEngineImpl(*std::move(model), *std::move(counter), max_batch);
}
