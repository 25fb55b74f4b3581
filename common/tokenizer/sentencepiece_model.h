// A SentencePiece model (.model file = serialized sentencepiece.ModelProto) read and run
// without libsentencepiece or protobuf: pieces + scores + types, the normalizer flags and the
// BPE merge loop. Exists because Debian's libsentencepiece embeds protobuf-lite 3.14, which
// cannot live in a process next to gRPC's libprotobuf 3.21 (module_loader.h).
//
// Scope (everything else is refused at load with Unimplemented, so a model is either encoded
// exactly like libsentencepiece 0.1.97 does or not at all):
//   - model_type BPE (Llama / the repo's tokenizers; Unigram, word and char are not done),
//   - identity normalization (no precompiled_charsmap, no denormalizer), whitespace as prefix,
//   - add_dummy_prefix / remove_extra_whitespaces / escape_whitespaces as the model says,
//   - user-defined symbols (atomic), unused pieces (re-split), byte fallback.
// Checked id-for-id against libsentencepiece in tests/tokenizer/sentencepiece_model_test.cc.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctx::tokenizer {

class SentencePieceModel {
 public:
  // sentencepiece.ModelProto.SentencePiece.Type
  enum class PieceType : uint8_t {
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6,
  };
  struct Piece {
    std::string text;  // e.g. "▁world", "<0x0A>", "<s>"
    float score = 0;   // BPE: merge priority, larger first
    PieceType type = PieceType::kNormal;
  };

  // Parses a serialized ModelProto. InvalidArgument for malformed bytes (every length and
  // field is bounds-checked), Unimplemented for models outside the scope above.
  static absl::StatusOr<SentencePieceModel> Parse(absl::string_view bytes);
  // Reads and parses `path` (NotFound when unreadable).
  static absl::StatusOr<SentencePieceModel> Load(const std::string& path);

  // Piece ids of `text` (no BOS/EOS), as SentencePieceProcessor::Encode. Never fails:
  // malformed UTF-8 becomes U+FFFD like libsentencepiece.
  std::vector<int> Encode(absl::string_view text) const;
  // Text of `ids`, as SentencePieceProcessor::Decode; every id must be in [0, size()).
  std::string Decode(std::span<const int> ids) const;

  int size() const { return static_cast<int>(pieces_.size()); }
  const Piece& piece(int id) const { return pieces_[id]; }
  // Id of `piece` (reserved pieces first, then normal ones), unk_id() when unknown.
  int PieceToId(absl::string_view piece) const;
  int unk_id() const { return unk_id_; }
  int bos_id() const { return bos_id_; }  // -1 when the model has no BOS piece
  int eos_id() const { return eos_id_; }

 private:
  std::string Normalize(absl::string_view text) const;
  // Length of the user-defined symbol at the start of `s`, 0 if none.
  size_t MatchUserDefined(absl::string_view s) const;

  std::vector<Piece> pieces_;
  std::unordered_map<std::string, int> normal_;    // NORMAL, USER_DEFINED, UNUSED
  std::unordered_map<std::string, int> reserved_;  // CONTROL, UNKNOWN, BYTE
  std::vector<std::string> user_defined_;
  size_t max_user_defined_ = 0;
  int byte_ids_[256];  // <0xNN> piece ids (-1 when absent)
  int unk_id_ = -1, bos_id_ = -1, eos_id_ = -1;
  bool byte_fallback_ = false;
  bool add_dummy_prefix_ = true;
  bool remove_extra_whitespaces_ = true;
  bool escape_whitespaces_ = true;
  std::string unk_surface_ = " \xE2\x81\x87 ";
};

}  // namespace ctx::tokenizer
