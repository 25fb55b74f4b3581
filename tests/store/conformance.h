// One behavioural suite for every ChunkStore backend. Call it from a TEST_CASE with a factory
// that returns a fresh, empty store each time (the suite uses SECTIONs, so Catch re-runs the
// test case once per section and the factory is called again each run).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/store/chunk_store.h"
#include "tests/store/test_data.h"

namespace ctx::store::testing {

using StoreFactory = std::function<std::unique_ptr<ChunkStore>()>;

void RunConformanceSuite(const StoreFactory& factory);

}  // namespace ctx::store::testing
