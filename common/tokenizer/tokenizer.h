// SentencePiece tokenizer of a Llama checkpoint (tokenizer.model), with the special ids the
// checkpoint declares. LM input = [BOS] + sp.encode(text), as HF's LlamaTokenizer builds it.
// Runs on the built-in, protobuf-free reader (sentencepiece_model.h, BPE models), so it may
// be linked into gRPC processes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctx::tokenizer {

class SentencePieceModel;

class Tokenizer {
 public:
  // Loads `<dir>/tokenizer.model`; BOS/EOS come from `<dir>/generation_config.json`, else
  // `<dir>/config.json`, else the SentencePiece model itself.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> LoadFromModelDir(const std::string& dir);
  // Loads a SentencePiece model file; bos_id/eos_id < 0 take the model's own ids.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model_path,
                                                         int bos_id = -1, int eos_id = -1);
  ~Tokenizer();

  // Token ids of `text`, preceded by BOS when add_bos (the LM input convention).
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text, bool add_bos) const;
  // Text of `ids` (control tokens such as BOS/EOS produce nothing). Ids out of the vocabulary
  // give InvalidArgument.
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const;

  // The raw bytes one token contributes to the text: a byte-fallback piece <0xNN> is that
  // single byte (possibly part of a multi-byte UTF-8 character), U+2581 becomes ' ', control
  // tokens give "", <unk> gives " \xE2\x81\x87 " like SentencePiece. Used by StreamDecoder.
  absl::StatusOr<std::string> TokenBytes(int32_t id) const;

  int vocab_size() const { return vocab_size_; }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  bool IsControl(int32_t id) const;
  // The SentencePiece piece string (e.g. "▁world", "<0x0A>"), "" when out of range.
  std::string IdToPiece(int32_t id) const;

 private:
  Tokenizer() = default;
  std::unique_ptr<SentencePieceModel> sp_;
  int vocab_size_ = 0;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
};

}  // namespace ctx::tokenizer
