#include "tests/store/test_data.h"

#include <vector>

#include "common/store/chunk_key.h"

namespace ctx::store::testing {

BlobKey TestKey(uint32_t n, uint32_t encoding, uint32_t level) {
  const std::vector<uint32_t> tokens = {n};
  return BlobKey{ComputeChunkHash({}, ModelFingerprint{}, "conformance", tokens), encoding, level};
}

std::string TestBytes(size_t size, uint32_t seed) {
  std::string s(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>(x >> 24);
  }
  if (size > 2) {
    s[0] = '\0';
    s[1] = static_cast<char>(0xff);
  }
  return s;
}

}  // namespace ctx::store::testing
