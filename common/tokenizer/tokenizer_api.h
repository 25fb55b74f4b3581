// The tokenizer as a gRPC process sees it: an interface over plain std types, implemented by
// libctx_tokenizer_module.so (tokenizer_module.cc: ctx::tokenizer::Tokenizer +
// libsentencepiece) and opened with LoadTokenizerModule. See module_loader.h for why a process
// that links gRPC must not link ctx_tokenizer directly. Tools and tests without gRPC may link
// ctx_tokenizer and use tokenizer.h instead.
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

// The module's entry point (extern "C"): a tokenizer for <model_dir> (Tokenizer::LoadFromModelDir),
// or null with *error set.
using LoadTokenizerFn = TokenizerApi* (*)(const char* model_dir, std::string* error);
inline constexpr const char* kLoadTokenizerSymbol = "ctx_load_tokenizer";
inline constexpr const char* kTokenizerModuleName = "libctx_tokenizer_module.so";

// Opens libctx_tokenizer_module.so (next to the executable, then in `extra_dir` if non-empty)
// and loads the tokenizer of `model_dir`. FailedPrecondition naming the module paths tried or
// the model directory's error.
absl::StatusOr<std::unique_ptr<TokenizerApi>> LoadTokenizerModule(
    const std::string& model_dir, const std::string& extra_dir = "");

}  // namespace ctx::tokenizer
