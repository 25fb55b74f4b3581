// libFuzzer target: SafetensorsIndex::Parse on arbitrary bytes; every tensor of a parsed
// index lies inside the file, and converting it to float stays in bounds.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/tensor/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ctx::tensor;
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  absl::StatusOr<SafetensorsIndex> index = SafetensorsIndex::Parse(file);
  if (!index.ok()) return 0;
  for (const TensorView& t : index->tensors()) {
    if (index->Find(t.name) == nullptr) __builtin_trap();
    if (!t.bytes.empty() &&
        (t.bytes.data() < file.data() || t.bytes.data() + t.bytes.size() > file.data() + size)) {
      __builtin_trap();  // a view outside the file
    }
    if (t.NumElements() <= (uint64_t{1} << 20)) (void)t.ToFloat();
  }
  return 0;
}
