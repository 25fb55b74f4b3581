#include "common/lingua/token_counter.h"

#include "absl/strings/str_cat.h"

namespace ctx::lingua {

absl::StatusOr<std::unique_ptr<SentencePieceTokenCounter>> SentencePieceTokenCounter::Load(
    const std::string& path) {
  auto c = std::make_unique<SentencePieceTokenCounter>();
  if (std::string err = c->sp_.Load(path); !err.empty()) {
    return absl::NotFoundError(absl::StrCat("cannot load counting tokenizer ", path, ": ", err));
  }
  return c;
}

size_t SentencePieceTokenCounter::Count(absl::string_view text) const {
  if (text.empty()) return 0;
  return sp_.Encode(std::string(text)).size();
}

size_t ApproxTokenCounter::Count(absl::string_view text) const {
  size_t cps = 0;
  for (char ch : text) cps += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  return (cps + 3) / 4;
}

}  // namespace ctx::lingua
