#include "services/controller/api_keys.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ctx::controller {

namespace {
// Tenants end up in file names, metric-free logs and kvcache keys: keep them plain.
bool ValidName(absl::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}
}  // namespace

absl::Status ApiKeys::Add(const std::string& key, const std::string& tenant,
                          absl::string_view where) {
  if (key.empty() || key.size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": empty or over-long API key"));
  }
  if (!ValidName(tenant)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": tenant '", tenant, "' must be 1-128 characters of [A-Za-z0-9._-]"));
  }
  auto [it, inserted] = tenants_.emplace(key, tenant);
  if (!inserted && it->second != tenant) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": a key is listed for two tenants ('",
                                                   it->second, "' and '", tenant, "')"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ApiKeys> ApiKeys::Parse(absl::string_view file_text, absl::string_view origin,
                                       absl::string_view flag_list, bool allow_anonymous) {
  ApiKeys keys;
  keys.allow_anonymous_ = allow_anonymous;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(file_text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat(origin, ":", line_no);
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected 'KEY TENANT', got ", fields.size(), " fields"));
    }
    if (absl::Status s = keys.Add(fields[0], fields[1], where); !s.ok()) return s;
  }
  for (absl::string_view item : absl::StrSplit(flag_list, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    const size_t colon = item.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "--api_keys: expected KEY:TENANT items, got an item "
          "without ':'");
    }
    if (absl::Status s = keys.Add(std::string(item.substr(0, colon)),
                                  std::string(item.substr(colon + 1)), "--api_keys");
        !s.ok()) {
      return s;
    }
  }
  return keys;
}

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::string& path, absl::string_view flag_list,
                                      bool allow_anonymous) {
  std::string text;
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) {
      return absl::NotFoundError(absl::StrCat("--api_keys_file=", path, ": cannot be read"));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  return Parse(text, path, flag_list, allow_anonymous);
}

absl::StatusOr<std::string> ApiKeys::TenantFor(std::optional<absl::string_view> key) const {
  if (!key.has_value() || key->empty()) {
    if (allow_anonymous_) return std::string(kAnonymousTenant);
    return absl::UnauthenticatedError(
        "missing x-api-key metadata (this controller requires an "
        "API key; see --api_keys_file)");
  }
  auto it = tenants_.find(*key);
  if (it == tenants_.end()) return absl::UnauthenticatedError("unknown API key in x-api-key");
  return it->second;
}

}  // namespace ctx::controller
