#include "common/tokenizer/tokenizer_api.h"

#include "absl/strings/str_cat.h"
#include "common/tokenizer/stream_decoder.h"
#include "common/tokenizer/tokenizer.h"

namespace ctx::tokenizer {
namespace {

class StreamDecoderImpl final : public StreamDecoderApi {
 public:
  StreamDecoderImpl(const Tokenizer& t, bool at_text_start) : d_(t, at_text_start) {}
  std::string Push(int32_t id) override {
    absl::StatusOr<std::string> s = d_.Push(id);
    return s.ok() ? *s : std::string();
  }
  std::string Flush() override { return d_.Flush(); }

 private:
  StreamDecoder d_;
};

class TokenizerImpl final : public TokenizerApi {
 public:
  explicit TokenizerImpl(std::unique_ptr<Tokenizer> t) : t_(std::move(t)) {}
  bool Encode(const std::string& text, bool add_bos, std::vector<int32_t>* ids,
              std::string* error) const override {
    absl::StatusOr<std::vector<int32_t>> r = t_->Encode(text, add_bos);
    if (!r.ok()) {
      *error = std::string(r.status().message());
      return false;
    }
    *ids = std::move(*r);
    return true;
  }
  bool Decode(const std::vector<int32_t>& ids, std::string* text,
              std::string* error) const override {
    absl::StatusOr<std::string> r = t_->Decode(ids);
    if (!r.ok()) {
      *error = std::string(r.status().message());
      return false;
    }
    *text = std::move(*r);
    return true;
  }
  int32_t bos_id() const override { return t_->bos_id(); }
  int32_t eos_id() const override { return t_->eos_id(); }
  int vocab_size() const override { return t_->vocab_size(); }
  std::unique_ptr<StreamDecoderApi> NewStreamDecoder(bool at_text_start) const override {
    return std::make_unique<StreamDecoderImpl>(*t_, at_text_start);
  }

 private:
  std::unique_ptr<Tokenizer> t_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TokenizerApi>> LoadTokenizer(const std::string& model_dir) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::LoadFromModelDir(model_dir);
  if (!t.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("tokenizer of ", model_dir, ": ", t.status().message()));
  }
  return std::unique_ptr<TokenizerApi>(new TokenizerImpl(*std::move(t)));
}

}  // namespace ctx::tokenizer
