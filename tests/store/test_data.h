// Deterministic keys and payloads shared by the store tests and store_bench (no Catch here).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/store/chunk_store.h"

namespace ctx::store::testing {

// A BlobKey derived from a small integer (distinct ints give distinct hashes).
BlobKey TestKey(uint32_t n, uint32_t encoding = 2, uint32_t level = 1);
// Deterministic binary bytes (includes NUL and 0xff) of length `size`.
std::string TestBytes(size_t size, uint32_t seed);

}  // namespace ctx::store::testing
