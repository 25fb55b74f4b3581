// TenantLimits in-process: slots per tenant, release on Release() and on destruction.
#include "services/controller/tenant_limits.h"

#include <catch2/catch.hpp>

namespace ctx::controller {

TEST_CASE("TenantLimits: streams per tenant, given back by Release or destruction",
          "[harden][limits]") {
  TenantLimits limits({.max_streams_per_tenant = 2, .max_context_tokens = 0});
  auto a1 = limits.AcquireStream("alice", "Query");
  auto a2 = limits.AcquireStream("alice", "RegisterContext");
  REQUIRE(a1.ok());
  REQUIRE(a2.ok());
  CHECK(limits.open_streams("alice") == 2);
  auto a3 = limits.AcquireStream("alice", "Query");
  REQUIRE(a3.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(a3.status().message() ==
        "Query: tenant 'alice' already has 2 streams open (RegisterContext + Query; limit "
        "--max_streams_per_tenant=2); retry when one of them has finished");
  CHECK(limits.AcquireStream("bob", "Query").ok());  // released at once (temporary)
  CHECK(limits.open_streams("bob") == 0);

  (*a1)->Release();
  (*a1)->Release();  // idempotent
  CHECK(limits.open_streams("alice") == 1);
  a2->reset();  // last reference gone: released
  CHECK(limits.open_streams("alice") == 0);
  CHECK(limits.AcquireStream("alice", "Query").ok());
}

TEST_CASE("TenantLimits: unlimited by default, and the context-token check", "[harden][limits]") {
  TenantLimits none;
  std::vector<std::shared_ptr<TenantLimits::StreamSlot>> held;
  for (int i = 0; i < 100; ++i) held.push_back(*none.AcquireStream("t", "Query"));
  CHECK(none.open_streams("t") == 0);  // not even counted
  CHECK(none.CheckContextTokens(1u << 30).ok());

  TenantLimits small({.max_streams_per_tenant = 0, .max_context_tokens = 1000});
  CHECK(small.CheckContextTokens(1000).ok());
  const absl::Status s = small.CheckContextTokens(1001);
  CHECK(s.code() == absl::StatusCode::kResourceExhausted);
  CHECK(s.message() ==
        "RegisterContext: the text is 1001 tokens; this controller accepts at most 1000 tokens "
        "per context (--max_context_tokens): split the document");
}

}  // namespace ctx::controller
