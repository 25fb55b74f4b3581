// The inside of libctx_lingua_engine.so: see lingua_engine.h for why it is a separate object.
#include "services/compressor/lingua_engine.h"

#include <algorithm>

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
        max_batch_(std::max(1, max_batch)) {}

  // Rows are grouped by length so that padding costs at most ~15 % extra: a padded row costs
  // as much as a full one (a 150-piece chunk padded to 511 costs ~3.4x), which on the CPU is
  // more than batching saves.
  absl::StatusOr<std::vector<std::vector<float>>> Forward(
      std::span<const std::vector<int32_t>> seqs) const override {
    std::vector<size_t> order(seqs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return seqs[a].size() > seqs[b].size(); });
    std::vector<std::vector<float>> out(seqs.size());
    for (size_t s = 0; s < order.size();) {
      const size_t longest = seqs[order[s]].size();
      size_t e = s + 1;
      while (e < order.size() && e - s < static_cast<size_t>(max_batch_) &&
             static_cast<double>(seqs[order[e]].size()) >=
                 kMinFill * static_cast<double>(longest)) {
        ++e;
      }
      std::vector<std::vector<int32_t>> group;
      for (size_t k = s; k < e; ++k) group.push_back(seqs[order[k]]);
      auto probs = model_.classifier->KeepProbs(group);
      if (!probs.ok()) return probs.status();
      for (size_t k = s; k < e; ++k) out[order[k]] = std::move((*probs)[k - s]);
      s = e;
    }
    return out;
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
  int max_batch_;
  static constexpr double kMinFill = 0.85;  // shortest row / longest row within one forward
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
