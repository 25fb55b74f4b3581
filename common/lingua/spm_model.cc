#include "common/lingua/spm_model.h"

#include <sentencepiece_processor.h>

namespace ctx::lingua {

SpmModel::SpmModel() = default;
SpmModel::~SpmModel() = default;

std::string SpmModel::Load(const std::string& path) {
  sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto st = sp_->Load(path);
  if (!st.ok()) {
    sp_.reset();
    return st.ToString();
  }
  return "";
}

std::string SpmModel::LoadFromSerialized(const std::string& model_proto) {
  sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto st = sp_->LoadFromSerializedProto(model_proto);
  if (!st.ok()) {
    sp_.reset();
    return st.ToString();
  }
  return "";
}

std::vector<int> SpmModel::Encode(const std::string& text) const {
  std::vector<int> ids;
  if (!sp_->Encode(text, &ids).ok()) ids.clear();
  return ids;
}

int SpmModel::PieceSize() const { return sp_->GetPieceSize(); }
std::string SpmModel::IdToPiece(int id) const { return sp_->IdToPiece(id); }
int SpmModel::PieceToId(const std::string& piece) const { return sp_->PieceToId(piece); }
float SpmModel::GetScore(int id) const { return sp_->GetScore(id); }
bool SpmModel::IsByte(int id) const { return sp_->IsByte(id); }
int SpmModel::unk_id() const { return sp_->unk_id(); }
int SpmModel::bos_id() const { return sp_->bos_id(); }
int SpmModel::eos_id() const { return sp_->eos_id(); }

}  // namespace ctx::lingua
