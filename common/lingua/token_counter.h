// Token counts for `rate` / `target_token` and the reported origin/compressed counts.
//
// The reference counts in tiktoken cl100k (GPT-3.5/4). ctxstream counts in the tokenizer of
// the model that will read the compressed prompt (default: models/tiny-llama/tokenizer.model),
// behind this interface so a deployment can plug in another tokenizer (e.g. a cl100k BPE).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/lingua/spm_model.h"

namespace ctx::lingua {

class TokenCounter {
 public:
  virtual ~TokenCounter() = default;
  // Number of tokens of `text` without BOS/EOS. Must be thread-safe.
  virtual size_t Count(absl::string_view text) const = 0;
};

// sentencepiece pieces of the text (a Llama-style tokenizer.model).
class SentencePieceTokenCounter : public TokenCounter {
 public:
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenCounter>> Load(const std::string& path);
  size_t Count(absl::string_view text) const override;

 private:
  SpmModel sp_;
};

// Counts UTF-8 code points divided by 4, rounded up (a tokenizer-free stand-in; tests only).
class ApproxTokenCounter : public TokenCounter {
 public:
  size_t Count(absl::string_view text) const override;
};

}  // namespace ctx::lingua
