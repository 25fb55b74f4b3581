// ContextRegistry: the controller's own record of registered contexts (text, token ids,
// owner, KV status, optional compressed version), scoped by tenant.
//
// Persistence: with a state directory, every record is one JSON file
//   <state_dir>/contexts/<context_id>.json
// written atomically (temp file + rename) on every change and loaded at start-up, so a
// restarted controller still knows its contexts (the KV itself lives in kvcache). Without a
// state directory the registry is in memory only.
//
// Tenant scoping: every lookup takes the tenant; a context of another tenant is reported
// exactly like a missing one (the caller answers NOT_FOUND), so ids cannot be probed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ctx::controller {

struct ContextRecord {
  std::string context_id;
  std::string tenant;
  std::string name;
  std::string text;
  std::vector<int32_t> tokens;  // the context in the inference model's vocabulary, BOS first
  uint32_t chunks = 0;          // KV chunks stored in kvcache (0 until ingested)
  uint32_t chunk_tokens = 0;
  bool kv_ready = false;  // kvcache committed the manifest
  uint64_t kv_bytes = 0;  // stored bytes over all levels
  // Precomputed LLMLingua-2 version (empty when not requested).
  std::string compressed_text;
  std::vector<int32_t> compressed_tokens;
  float compress_rate = 0;
  int64_t created_unix_ms = 0;
};

class ContextRegistry {
 public:
  // Loads every record under <state_dir>/contexts ("" = memory only). A malformed file is an
  // error naming it (nothing is silently dropped).
  static absl::StatusOr<std::unique_ptr<ContextRegistry>> Open(const std::string& state_dir);

  // A fresh random 128-bit id as 32 lowercase hex digits.
  static std::string NewContextId();

  // Inserts or replaces (and persists) a record.
  absl::Status Put(const ContextRecord& record);
  // The record if it exists AND belongs to `tenant`.
  std::optional<ContextRecord> Get(const std::string& tenant, const std::string& id) const;
  // Up to `limit` records of `tenant` with id > `after_id`, in id order.
  std::vector<ContextRecord> List(const std::string& tenant, const std::string& after_id,
                                  size_t limit) const;
  // Removes the record (and its file). NotFound when absent or another tenant's.
  absl::Status Delete(const std::string& tenant, const std::string& id);

  size_t size() const;

 private:
  explicit ContextRegistry(std::string dir) : dir_(std::move(dir)) {}
  std::string PathOf(const std::string& id) const;

  const std::string dir_;  // <state_dir>/contexts, or empty
  mutable std::mutex mu_;
  std::map<std::string, ContextRecord> records_;  // by id (ids are unique across tenants)
};

}  // namespace ctx::controller
