#include "services/controller/tenant_limits.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(uint32_t, max_streams_per_tenant, 0,
          "RegisterContext + Query streams one tenant may have open at once; beyond it "
          "RESOURCE_EXHAUSTED (0 = unlimited).");
ABSL_FLAG(uint64_t, max_context_tokens, 0,
          "Largest context (tokens) RegisterContext accepts; beyond it RESOURCE_EXHAUSTED "
          "(0 = only the model's own limit).");

namespace ctx::controller {

TenantLimitOptions TenantLimits::OptionsFromFlags() {
  TenantLimitOptions o;
  o.max_streams_per_tenant = absl::GetFlag(FLAGS_max_streams_per_tenant);
  o.max_context_tokens = absl::GetFlag(FLAGS_max_context_tokens);
  return o;
}

void TenantLimits::StreamSlot::Release() {
  if (owner_ == nullptr) return;
  owner_->Release(tenant_);
  owner_ = nullptr;
}

absl::StatusOr<std::shared_ptr<TenantLimits::StreamSlot>> TenantLimits::AcquireStream(
    const std::string& tenant, absl::string_view method) {
  const uint32_t limit = options_.max_streams_per_tenant;
  if (limit == 0) return std::make_shared<StreamSlot>(nullptr, tenant);
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t& n = open_[tenant];
  if (n >= limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        method, ": tenant '", tenant, "' already has ", n, " streams open (RegisterContext + Query",
        "; limit --max_streams_per_tenant=", limit, "); retry when one of them has finished"));
  }
  ++n;
  return std::make_shared<StreamSlot>(this, tenant);
}

void TenantLimits::Release(const std::string& tenant) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(tenant);
  if (it == open_.end()) return;
  if (--it->second == 0) open_.erase(it);
}

absl::Status TenantLimits::CheckContextTokens(uint64_t tokens) const {
  if (options_.max_context_tokens == 0 || tokens <= options_.max_context_tokens) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("RegisterContext: the text is ", tokens, " tokens; this controller accepts at ",
                   "most ", options_.max_context_tokens,
                   " tokens per context (--max_context_tokens): split the document"));
}

uint32_t TenantLimits::open_streams(const std::string& tenant) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(tenant);
  return it == open_.end() ? 0 : it->second;
}

}  // namespace ctx::controller
