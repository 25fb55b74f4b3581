// One behavioural suite for every ChunkStore backend. Call it from a TEST_CASE with a factory
// that returns a fresh, empty store each time (the suite uses SECTIONs, so Catch re-runs the
// test case once per section and the factory is called again each run).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/store/chunk_store.h"

namespace ctx::store::testing {

using StoreFactory = std::function<std::unique_ptr<ChunkStore>()>;

void RunConformanceSuite(const StoreFactory& factory);

// A BlobKey derived from a small integer (distinct ints give distinct hashes).
BlobKey TestKey(uint32_t n, uint32_t encoding = 2, uint32_t level = 1);
// Deterministic binary bytes (includes NUL and 0xff) of length `size`.
std::string TestBytes(size_t size, uint32_t seed);

}  // namespace ctx::store::testing
