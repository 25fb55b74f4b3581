// libctx_tokenizer_module.so: ctx::tokenizer::Tokenizer behind TokenizerApi (tokenizer_api.h).
#include <string>

#include "common/tokenizer/stream_decoder.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/tokenizer_api.h"

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
}  // namespace ctx::tokenizer

extern "C" __attribute__((visibility("default"))) ctx::tokenizer::TokenizerApi* ctx_load_tokenizer(
    const char* model_dir, std::string* error) {
  auto t = ctx::tokenizer::Tokenizer::LoadFromModelDir(model_dir);
  if (!t.ok()) {
    *error = std::string(t.status().message());
    return nullptr;
  }
  return new ctx::tokenizer::TokenizerImpl(std::move(*t));
}
