// TenantLimits: per-tenant quotas of the controller, enforced with RESOURCE_EXHAUSTED.
//
//   --max_streams_per_tenant  RegisterContext + Query streams one tenant may have open at once
//                             (0 = unlimited). A stream holds its slot from the handler until
//                             its final status is sent; a client that cancels frees it as soon
//                             as the engine notices (the next event it tries to send).
//   --max_context_tokens      tokens a registered context may have (0 = only the model's own
//                             limit). Checked on the "tokenized" progress event, i.e. before
//                             the record is saved or anything is ingested.
//
// Both are process-wide flags read once by FromFlags(); the handlers hook in with a few lines
// (controller_service.cc), so the orchestration (query_engine) knows nothing about quotas.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctx::controller {

struct TenantLimitOptions {
  uint32_t max_streams_per_tenant = 0;  // 0 = unlimited
  uint64_t max_context_tokens = 0;      // 0 = unlimited
};

class TenantLimits {
 public:
  // A held stream slot. Release() (idempotent) or destruction gives it back.
  class StreamSlot {
   public:
    StreamSlot(TenantLimits* owner, std::string tenant)
        : owner_(owner), tenant_(std::move(tenant)) {}
    ~StreamSlot() { Release(); }
    StreamSlot(const StreamSlot&) = delete;
    StreamSlot& operator=(const StreamSlot&) = delete;
    void Release();

   private:
    TenantLimits* owner_;  // nullptr once released (or when no limit applies)
    std::string tenant_;
  };

  explicit TenantLimits(TenantLimitOptions options = {}) : options_(options) {}
  // From --max_streams_per_tenant and --max_context_tokens.
  static TenantLimitOptions OptionsFromFlags();

  // A slot for one more stream of `tenant`, or RESOURCE_EXHAUSTED naming the limit. `method`
  // only goes into the message. Shared so that it can ride in a copyable task.
  absl::StatusOr<std::shared_ptr<StreamSlot>> AcquireStream(const std::string& tenant,
                                                            absl::string_view method);
  // OK, or RESOURCE_EXHAUSTED when a context of `tokens` tokens exceeds --max_context_tokens.
  absl::Status CheckContextTokens(uint64_t tokens) const;

  // Streams `tenant` holds now (tests, logs).
  uint32_t open_streams(const std::string& tenant) const;
  const TenantLimitOptions& options() const { return options_; }

 private:
  void Release(const std::string& tenant);

  const TenantLimitOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, uint32_t> open_;  // tenant -> streams held (entries erased at 0)
};

}  // namespace ctx::controller
