#include "services/controller/context_registry.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace ctx::controller {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json ToJson(const ContextRecord& r) {
  return json{{"context_id", r.context_id},
              {"tenant", r.tenant},
              {"name", r.name},
              {"text", r.text},
              {"tokens", r.tokens},
              {"chunks", r.chunks},
              {"chunk_tokens", r.chunk_tokens},
              {"kv_ready", r.kv_ready},
              {"kv_bytes", r.kv_bytes},
              {"compressed_text", r.compressed_text},
              {"compressed_tokens", r.compressed_tokens},
              {"compress_rate", r.compress_rate},
              {"created_unix_ms", r.created_unix_ms}};
}

ContextRecord FromJson(const json& j) {
  ContextRecord r;
  r.context_id = j.at("context_id").get<std::string>();
  r.tenant = j.at("tenant").get<std::string>();
  r.name = j.value("name", "");
  r.text = j.value("text", "");
  r.tokens = j.value("tokens", std::vector<int32_t>{});
  r.chunks = j.value("chunks", 0u);
  r.chunk_tokens = j.value("chunk_tokens", 0u);
  r.kv_ready = j.value("kv_ready", false);
  r.kv_bytes = j.value("kv_bytes", uint64_t{0});
  r.compressed_text = j.value("compressed_text", "");
  r.compressed_tokens = j.value("compressed_tokens", std::vector<int32_t>{});
  r.compress_rate = j.value("compress_rate", 0.0f);
  r.created_unix_ms = j.value("created_unix_ms", int64_t{0});
  return r;
}

// Ids become file names: only accept what NewContextId produces (hex).
bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ContextRegistry>> ContextRegistry::Open(
    const std::string& state_dir) {
  if (state_dir.empty()) return std::unique_ptr<ContextRegistry>(new ContextRegistry(""));
  const fs::path dir = fs::path(state_dir) / "contexts";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("--state_dir: cannot create ", dir.string(), ": ", ec.message()));
  }
  std::unique_ptr<ContextRegistry> reg(new ContextRegistry(dir.string()));
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".json") continue;  // leftovers of interrupted writes: *.tmp
    std::ifstream in(e.path());
    std::stringstream ss;
    ss << in.rdbuf();
    try {
      ContextRecord r = FromJson(json::parse(ss.str()));
      if (!ValidId(r.context_id)) throw std::runtime_error("bad context_id");
      reg->records_[r.context_id] = std::move(r);
    } catch (const std::exception& ex) {
      return absl::DataLossError(absl::StrCat("context record ", e.path().string(),
                                              " is malformed (", ex.what(),
                                              "); move it away to start"));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("listing ", dir.string(), ": ", ec.message()));
  return reg;
}

std::string ContextRegistry::NewContextId() {
  static thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }());
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

std::string ContextRegistry::PathOf(const std::string& id) const {
  return (fs::path(dir_) / (id + ".json")).string();
}

absl::Status ContextRegistry::Put(const ContextRecord& record) {
  if (!ValidId(record.context_id)) {
    return absl::InvalidArgumentError("context id must be lowercase hex");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!dir_.empty()) {
    const std::string path = PathOf(record.context_id);
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << ToJson(record).dump();
      out.flush();
      if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  }
  records_[record.context_id] = record;
  return absl::OkStatus();
}

std::optional<ContextRecord> ContextRegistry::Get(const std::string& tenant,
                                                  const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(id);
  if (it == records_.end() || it->second.tenant != tenant) return std::nullopt;
  return it->second;
}

std::vector<ContextRecord> ContextRegistry::List(const std::string& tenant,
                                                 const std::string& after_id, size_t limit) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ContextRecord> out;
  for (auto it = records_.upper_bound(after_id); it != records_.end() && out.size() < limit; ++it) {
    if (it->second.tenant == tenant) out.push_back(it->second);
  }
  return out;
}

absl::Status ContextRegistry::Delete(const std::string& tenant, const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(id);
  if (it == records_.end() || it->second.tenant != tenant) {
    return absl::NotFoundError(absl::StrCat("no context ", id));
  }
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove(PathOf(id), ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot remove ", PathOf(id)));
  }
  records_.erase(it);
  return absl::OkStatus();
}

size_t ContextRegistry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_.size();
}

}  // namespace ctx::controller
