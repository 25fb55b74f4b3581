// A classifier checkpoint directory loaded as a whole: sentencepiece tokenizer + XLM-R weights,
// with the tokenizer's [NEWi] ids wired to the classifier's embedding rows.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/lingua/xlmr_classifier.h"
#include "common/lingua/xlmr_tokenizer.h"

namespace ctx::lingua {

struct LinguaModel {
  std::unique_ptr<XlmrTokenizer> tokenizer;
  std::unique_ptr<XlmrClassifier> classifier;

  // `model_dir` holds config.json, model.safetensors (or shards) and sentencepiece.bpe.model,
  // or, failing that, an XLM-R-style tokenizer.json (Unigram; converted at load time).
  static absl::StatusOr<LinguaModel> Load(const std::string& model_dir);
};

}  // namespace ctx::lingua
