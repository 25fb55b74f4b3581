// libFuzzer target: ParseLlamaConfig on arbitrary text. Input: config.json text, optionally
// followed by a NUL byte and generation_config.json text. A parsed config must validate.
#include <cstddef>
#include <cstdint>

#include "common/model/llama_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view all(reinterpret_cast<const char*>(data), size);
  const size_t nul = all.find('\0');
  const absl::string_view config = all.substr(0, nul);
  const absl::string_view generation =
      nul == absl::string_view::npos ? absl::string_view() : all.substr(nul + 1);
  absl::StatusOr<ctx::model::LlamaConfig> c = ctx::model::ParseLlamaConfig(config, generation);
  if (c.ok() && !ctx::model::ValidateLlamaConfig(*c).ok()) __builtin_trap();
  return 0;
}
