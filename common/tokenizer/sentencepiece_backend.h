// A thin, Abseil-free wall around libsentencepiece. <sentencepiece_processor.h> declares
// `namespace absl { using std::string_view; }`, which cannot coexist with Debian's Abseil
// in one translation unit, so only sentencepiece_backend.cc includes it and this header
// speaks plain std types.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace ctx::tokenizer::internal {

class SentencePieceBackend {
 public:
  // Loads a serialized SentencePiece model; on failure returns null and sets *error.
  static std::unique_ptr<SentencePieceBackend> Load(const std::string& path, std::string* error);
  ~SentencePieceBackend();
  SentencePieceBackend(const SentencePieceBackend&) = delete;
  SentencePieceBackend& operator=(const SentencePieceBackend&) = delete;

  // Returns false and sets *error on failure.
  bool Encode(const std::string& text, std::vector<int>* ids, std::string* error) const;
  bool Decode(const std::vector<int>& ids, std::string* text, std::string* error) const;

  int PieceSize() const;
  const std::string& IdToPiece(int id) const;
  bool IsByte(int id) const;
  bool IsControl(int id) const;
  bool IsUnknown(int id) const;
  int BosId() const;
  int EosId() const;

 private:
  struct Impl;
  explicit SentencePieceBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ctx::tokenizer::internal
