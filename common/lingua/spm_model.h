// Thin wrapper around libsentencepiece. Its header declares its own `absl::string_view`
// (an alias of std::string_view), which clashes with Debian's Abseil, so only spm_model.cc
// includes it and this interface uses std types only.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace ctx::lingua {

class SpmModel {
 public:
  // Empty string on success, else the error text.
  std::string Load(const std::string& path);
  // Same, from a serialized sentencepiece ModelProto.
  std::string LoadFromSerialized(const std::string& model_proto);
  SpmModel();
  ~SpmModel();

  std::vector<int> Encode(const std::string& text) const;
  int PieceSize() const;
  std::string IdToPiece(int id) const;
  int PieceToId(const std::string& piece) const;  // unk_id() when unknown
  float GetScore(int id) const;
  bool IsByte(int id) const;
  int unk_id() const;
  int bos_id() const;
  int eos_id() const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace ctx::lingua
