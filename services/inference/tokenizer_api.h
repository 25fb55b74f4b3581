// The tokenizer as the inference binary sees it: an interface over plain std types,
// implemented in a separately loaded module (tokenizer_module.cc).
//
// Why a module: libsentencepiece exports its own embedded protobuf-lite (3.14), which crashes a
// process that also links gRPC's libprotobuf (3.21) at static-initialization time. So only
// libctx_inference_tokenizer.so links ctx_tokenizer/libsentencepiece, and the server loads it
// with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) (same fix as services/compressor).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ctx::inference {

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

// The module's entry point (extern "C"): a tokenizer for <model_dir>, or null with *error set.
using LoadTokenizerFn = TokenizerApi* (*)(const char* model_dir, std::string* error);
inline constexpr const char* kLoadTokenizerSymbol = "ctx_inference_load_tokenizer";
inline constexpr const char* kTokenizerModuleName = "libctx_inference_tokenizer.so";

}  // namespace ctx::inference
