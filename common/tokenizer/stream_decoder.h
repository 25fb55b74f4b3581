// Incremental detokenization for streaming generation: feed tokens one at a time, get back
// the text that became complete. Byte-fallback tokens (<0xE6> <0x97> <0xA5>) are buffered
// until they form whole UTF-8 characters, so every chunk returned is valid UTF-8 and the
// concatenation of all chunks equals Tokenizer::Decode of the whole sequence.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"

namespace ctx::tokenizer {

class StreamDecoder {
 public:
  // at_text_start: the first token begins the text, so its leading space (SentencePiece's
  // dummy prefix) is dropped, as Decode does. Use false when continuing after a prompt.
  StreamDecoder(const Tokenizer& tokenizer, bool at_text_start);

  // Text completed by `id` (may be empty while a UTF-8 character is still incomplete).
  absl::StatusOr<std::string> Push(int32_t id);
  // Emits what is still buffered; an incomplete UTF-8 sequence comes out as U+FFFD.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool strip_leading_space_;
  std::string pending_;  // bytes of an unfinished UTF-8 character (at most 3)
};

// Splits `bytes` into the longest prefix made of whole UTF-8 characters (appended to *out;
// invalid bytes become U+FFFD) and returns how many trailing bytes form a still-incomplete
// character. Exposed for tests.
size_t AppendCompleteUtf8(const std::string& bytes, std::string* out);

}  // namespace ctx::tokenizer
