// ApiKeys: maps the `x-api-key` request header to a tenant.
//
// Sources (merged; a key listed twice must name the same tenant):
//   --api_keys_file  lines "KEY TENANT" (whitespace-separated; '#' comments, blank lines ok)
//   --api_keys       comma list "KEY:TENANT,KEY:TENANT"
// With allow_anonymous, a request WITHOUT a key is tenant "default" (the all-in-one quick
// start); a request with an unknown key is always UNAUTHENTICATED, never anonymous.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctx::controller {

inline constexpr char kAnonymousTenant[] = "default";

class ApiKeys {
 public:
  ApiKeys() = default;

  // Parses the file's text ("KEY TENANT" lines) and the flag's comma list. `origin` names the
  // file in error messages.
  static absl::StatusOr<ApiKeys> Parse(absl::string_view file_text, absl::string_view origin,
                                       absl::string_view flag_list, bool allow_anonymous);
  // Reads `path` (may be empty: no file) and parses it with `flag_list`.
  static absl::StatusOr<ApiKeys> Load(const std::string& path, absl::string_view flag_list,
                                      bool allow_anonymous);

  // The tenant of a request: `key` is the x-api-key header (nullopt when absent).
  // UNAUTHENTICATED for an unknown key, or no key without allow_anonymous.
  absl::StatusOr<std::string> TenantFor(std::optional<absl::string_view> key) const;

  size_t size() const { return tenants_.size(); }
  bool allow_anonymous() const { return allow_anonymous_; }

 private:
  absl::Status Add(const std::string& key, const std::string& tenant, absl::string_view where);

  std::map<std::string, std::string, std::less<>> tenants_;  // key -> tenant
  bool allow_anonymous_ = true;
};

}  // namespace ctx::controller
