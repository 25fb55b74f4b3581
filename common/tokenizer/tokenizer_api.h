// The tokenizer as the services see it: an interface over plain std types (error strings, no
// StatusOr), implemented in-process over ctx::tokenizer::Tokenizer. Tokenizer runs on the
// built-in protobuf-free SentencePiece reader (sentencepiece_model.h), so gRPC binaries link
// ctx_tokenizer directly; only code that needs libsentencepiece itself (common/lingua) must
// go through a module (module_loader.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ctx::tokenizer {

// Incremental detokenization (tokenizer::StreamDecoder behind the interface).
class StreamDecoderApi {
 public:
  virtual ~StreamDecoderApi() = default;
  // Text completed by `id` ("" while a UTF-8 character is incomplete or on error).
  virtual std::string Push(int32_t id) = 0;
  virtual std::string Flush() = 0;
};

class TokenizerApi {
 public:
  virtual ~TokenizerApi() = default;
  // False with *error set on failure.
  virtual bool Encode(const std::string& text, bool add_bos, std::vector<int32_t>* ids,
                      std::string* error) const = 0;
  virtual bool Decode(const std::vector<int32_t>& ids, std::string* text,
                      std::string* error) const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int vocab_size() const = 0;
  // at_text_start as in tokenizer::StreamDecoder.
  virtual std::unique_ptr<StreamDecoderApi> NewStreamDecoder(bool at_text_start) const = 0;
};

// The tokenizer of `model_dir` (Tokenizer::LoadFromModelDir); FailedPrecondition naming the
// directory and what is wrong with its tokenizer.model.
absl::StatusOr<std::unique_ptr<TokenizerApi>> LoadTokenizer(const std::string& model_dir);

}  // namespace ctx::tokenizer
