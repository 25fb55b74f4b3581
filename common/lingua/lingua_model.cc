#include "common/lingua/lingua_model.h"

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace ctx::lingua {

absl::StatusOr<LinguaModel> LinguaModel::Load(const std::string& model_dir) {
  const std::string spm = model_dir + "/sentencepiece.bpe.model";
  const std::string json = model_dir + "/tokenizer.json";
  std::error_code ec;
  LinguaModel m;
  if (std::filesystem::exists(spm, ec)) {
    auto tok = XlmrTokenizer::Load(spm);
    if (!tok.ok()) return tok.status();
    m.tokenizer = *std::move(tok);
  } else if (std::filesystem::exists(json, ec)) {
    auto tok = XlmrTokenizer::LoadFromTokenizerJson(json);
    if (!tok.ok()) return tok.status();
    m.tokenizer = *std::move(tok);
  } else {
    return absl::NotFoundError(absl::StrCat(
        model_dir,
        " has neither sentencepiece.bpe.model nor tokenizer.json; see common/lingua/README.md"));
  }
  auto clf = XlmrClassifier::Load(model_dir, m.tokenizer->added_token_base(),
                                  m.tokenizer->num_added_tokens());
  if (!clf.ok()) return clf.status();
  m.classifier = *std::move(clf);
  const int64_t base = m.tokenizer->added_token_base();
  const int64_t vocab = m.classifier->config().vocab_size;
  if (vocab != base && vocab != base + m.tokenizer->num_added_tokens()) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir, ": config vocab_size ", vocab, " does not fit the tokenizer (",
                     base, " ids, or ", base + m.tokenizer->num_added_tokens(), " with [NEWi])"));
  }
  return m;
}

}  // namespace ctx::lingua
