// libFuzzer target: the SentencePiece tokenizer wrapper. Encode arbitrary text (UTF-8 or
// not) and decode arbitrary ids (in or out of the vocabulary); errors are fine, crashes not.
// Its own binary without protobuf/gRPC: Debian's libsentencepiece embeds protobuf-lite 3.14,
// which crashes next to libprotobuf 3.21 (see services/compressor/CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ctx::tokenizer::Tokenizer* tok = [] {
    auto t = ctx::tokenizer::Tokenizer::Load(CTX_SOURCE_DIR "/models/tokenizer/tokenizer.model");
    if (!t.ok()) __builtin_trap();
    return t->release();
  }();
  if (size < 1) return 0;
  const absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) {
    (void)tok->Encode(rest, (data[0] & 2) != 0);
  } else {
    std::vector<int32_t> ids(rest.size() / 4);
    if (!ids.empty()) std::memcpy(ids.data(), rest.data(), ids.size() * 4);
    (void)tok->Decode(ids);
  }
  return 0;
}
