// No Abseil headers here (see sentencepiece_backend.h).
#include "common/tokenizer/sentencepiece_backend.h"

#include <sentencepiece_processor.h>

namespace ctx::tokenizer::internal {

struct SentencePieceBackend::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SentencePieceBackend::SentencePieceBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SentencePieceBackend::~SentencePieceBackend() = default;

std::unique_ptr<SentencePieceBackend> SentencePieceBackend::Load(const std::string& path,
                                                                 std::string* error) {
  auto impl = std::make_unique<Impl>();
  const auto status = impl->sp.Load(path);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return std::unique_ptr<SentencePieceBackend>(new SentencePieceBackend(std::move(impl)));
}

bool SentencePieceBackend::Encode(const std::string& text, std::vector<int>* ids,
                                  std::string* error) const {
  const auto status = impl_->sp.Encode(text, ids);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

bool SentencePieceBackend::Decode(const std::vector<int>& ids, std::string* text,
                                  std::string* error) const {
  const auto status = impl_->sp.Decode(ids, text);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

int SentencePieceBackend::PieceSize() const { return impl_->sp.GetPieceSize(); }
const std::string& SentencePieceBackend::IdToPiece(int id) const { return impl_->sp.IdToPiece(id); }
bool SentencePieceBackend::IsByte(int id) const { return impl_->sp.IsByte(id); }
bool SentencePieceBackend::IsControl(int id) const { return impl_->sp.IsControl(id); }
bool SentencePieceBackend::IsUnknown(int id) const { return impl_->sp.IsUnknown(id); }
int SentencePieceBackend::BosId() const { return impl_->sp.bos_id(); }
int SentencePieceBackend::EosId() const { return impl_->sp.eos_id(); }

}  // namespace ctx::tokenizer::internal
