#include "common/store/redis_store.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ctx::store {
namespace {

// KEYS[1] chunk key, KEYS[2] stats hash; ARGV[1] bytes. Keeps bytes/items exact on overwrite.
constexpr char kPutScript[] = R"lua(
local existed = redis.call('EXISTS', KEYS[1])
local old = redis.call('STRLEN', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'bytes', string.len(ARGV[1]) - old)
if existed == 0 then redis.call('HINCRBY', KEYS[2], 'items', 1) end
return 1)lua";

constexpr char kDeleteScript[] = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then
  local old = redis.call('STRLEN', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('HINCRBY', KEYS[2], 'bytes', 0 - old)  -- not -old: Lua's -0 is "-0"
  redis.call('HINCRBY', KEYS[2], 'items', -1)
end
return 1)lua";

// KEYS[1] tenant hash, KEYS[2] stats; ARGV[1] context id, ARGV[2] bytes.
constexpr char kPutManifestScript[] = R"lua(
local added = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'manifests', added)
return 1)lua";

constexpr char kDeleteManifestScript[] = R"lua(
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'manifests', -1)
end
return 1)lua";

timeval Millis(int ms) {
  timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

struct Argv {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  explicit Argv(const std::vector<std::string>& args) {
    for (const std::string& a : args) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
  }
};

}  // namespace

void RedisStore::ReplyDeleter::operator()(redisReply* r) const { freeReplyObject(r); }

RedisStore::RedisStore(Options options) : options_(std::move(options)) {}

RedisStore::~RedisStore() {
  std::lock_guard<std::mutex> lock(mu_);
  DropConnectionLocked();
}

absl::StatusOr<std::unique_ptr<RedisStore>> RedisStore::Connect(Options options) {
  std::unique_ptr<RedisStore> store(new RedisStore(std::move(options)));
  std::lock_guard<std::mutex> lock(store->mu_);
  if (auto s = store->ConnectLocked(); !s.ok()) return s;
  return store;
}

uint64_t RedisStore::connects() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connects_;
}

void RedisStore::DropConnectionLocked() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
}

absl::Status RedisStore::ConnectLocked() {
  DropConnectionLocked();
  redisContext* c = redisConnectWithTimeout(options_.host.c_str(), options_.port,
                                            Millis(options_.connect_timeout_ms));
  if (c == nullptr || c->err != 0) {
    const std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to Redis at ", options_.host, ":", options_.port, ": ", why));
  }
  if (redisSetTimeout(c, Millis(options_.command_timeout_ms)) != REDIS_OK) {
    redisFree(c);
    return absl::UnavailableError("cannot set the Redis command timeout");
  }
  ctx_ = c;
  ++connects_;
  return absl::OkStatus();
}

absl::StatusOr<RedisStore::Reply> RedisStore::CommandLocked(const std::vector<std::string>& argv) {
  Argv a(argv);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (ctx_ == nullptr) {
      if (auto s = ConnectLocked(); !s.ok()) return s;
    }
    Reply r(static_cast<redisReply*>(
        redisCommandArgv(ctx_, static_cast<int>(a.ptrs.size()), a.ptrs.data(), a.lens.data())));
    if (r == nullptr || ctx_->err != 0) {
      // The connection is broken (server restarted, timeout): drop it and retry once.
      const std::string why = ctx_->errstr;
      DropConnectionLocked();
      if (attempt == 1) {
        return absl::UnavailableError(absl::StrCat("Redis at ", options_.host, ":", options_.port,
                                                   " failed on ", argv[0], ": ", why));
      }
      continue;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      return absl::InternalError(absl::StrCat("Redis ", argv[0], " error: ", r->str));
    }
    return r;
  }
  return absl::UnavailableError("unreachable");
}

absl::StatusOr<RedisStore::Reply> RedisStore::Command(const std::vector<std::string>& argv) {
  std::lock_guard<std::mutex> lock(mu_);
  return CommandLocked(argv);
}

std::string RedisStore::ChunkKey(const BlobKey& key) const {
  return absl::StrCat(options_.prefix, ":c:", key.ToString());
}
std::string RedisStore::TenantKey(absl::string_view tenant) const {
  return absl::StrCat(options_.prefix, ":m:", tenant);
}
std::string RedisStore::StatsKey() const { return absl::StrCat(options_.prefix, ":stats"); }

absl::Status RedisStore::CheckSize(const BlobKey& key, size_t size) const {
  if (size > options_.max_blob_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob ", key.ToString(), " is ", size, " bytes, larger than the Redis store limit of ",
        options_.max_blob_bytes, " bytes per blob; use a smaller chunk size"));
  }
  return absl::OkStatus();
}

absl::Status RedisStore::PutMany(std::span<const BlobWrite> blobs) {
  for (const BlobWrite& b : blobs) {
    if (auto s = CheckSize(b.key, b.bytes.size()); !s.ok()) return s;
  }
  if (blobs.empty()) return absl::OkStatus();
  const std::string stats_key = StatsKey();
  std::vector<std::string> chunk_keys;
  for (const BlobWrite& b : blobs) chunk_keys.push_back(ChunkKey(b.key));
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status last = absl::OkStatus();
  for (int attempt = 0; attempt < 2; ++attempt) {  // the writes are idempotent: retry all
    if (ctx_ == nullptr) {
      if (last = ConnectLocked(); !last.ok()) return last;
    }
    for (size_t i = 0; i < blobs.size(); ++i) {
      const char* argv[6] = {"EVAL",           kPutScript,           "2", chunk_keys[i].data(),
                             stats_key.data(), blobs[i].bytes.data()};
      const size_t lens[6] = {4,
                              sizeof(kPutScript) - 1,
                              1,
                              chunk_keys[i].size(),
                              stats_key.size(),
                              blobs[i].bytes.size()};
      redisAppendCommandArgv(ctx_, 6, argv, lens);
    }
    bool broken = false;
    absl::Status first_error = absl::OkStatus();
    for (size_t i = 0; i < blobs.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
        broken = true;
        break;
      }
      Reply r(static_cast<redisReply*>(raw));
      if (r->type == REDIS_REPLY_ERROR && first_error.ok()) {
        first_error = absl::InternalError(absl::StrCat("Redis EVAL error: ", r->str));
      }
    }
    if (!broken) return first_error;
    last = absl::UnavailableError(absl::StrCat("Redis at ", options_.host, ":", options_.port,
                                               " failed during a pipelined put: ", ctx_->errstr));
    DropConnectionLocked();
  }
  return last;
}

absl::Status RedisStore::Put(const BlobKey& key, absl::string_view bytes) {
  if (auto s = CheckSize(key, bytes.size()); !s.ok()) return s;
  auto r = Command({"EVAL", kPutScript, "2", ChunkKey(key), StatsKey(), std::string(bytes)});
  return r.status();
}

absl::StatusOr<std::string> RedisStore::Get(const BlobKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = CommandLocked({"GET", ChunkKey(key)});
  if (!r.ok()) return r.status();
  if ((*r)->type == REDIS_REPLY_NIL) {
    ++misses_;
    return absl::NotFoundError(absl::StrCat("chunk blob ", key.ToString(), " not in store"));
  }
  ++hits_;
  return std::string((*r)->str, (*r)->len);
}

std::vector<absl::StatusOr<std::string>> RedisStore::GetMany(std::span<const BlobKey> keys) {
  std::vector<absl::StatusOr<std::string>> out;
  if (keys.empty()) return out;
  std::vector<std::string> names;
  names.reserve(keys.size());
  for (const BlobKey& k : keys) names.push_back(ChunkKey(k));
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status last = absl::OkStatus();
  for (int attempt = 0; attempt < 2; ++attempt) {
    out.clear();
    if (ctx_ == nullptr) {
      if (last = ConnectLocked(); !last.ok()) break;
    }
    // Pipeline: queue every GET, then read the replies in order (one round trip).
    for (const std::string& n : names) {
      const char* argv[2] = {"GET", n.data()};
      const size_t lens[2] = {3, n.size()};
      redisAppendCommandArgv(ctx_, 2, argv, lens);
    }
    bool broken = false;
    for (size_t i = 0; i < keys.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
        broken = true;
        break;
      }
      Reply r(static_cast<redisReply*>(raw));
      if (r->type == REDIS_REPLY_NIL) {
        ++misses_;
        out.push_back(
            absl::NotFoundError(absl::StrCat("chunk blob ", keys[i].ToString(), " not in store")));
      } else if (r->type == REDIS_REPLY_STRING) {
        ++hits_;
        out.push_back(std::string(r->str, r->len));
      } else {
        out.push_back(absl::InternalError(
            absl::StrCat("Redis GET error: ", r->str != nullptr ? r->str : "?")));
      }
    }
    if (!broken) return out;
    last = absl::UnavailableError(absl::StrCat("Redis at ", options_.host, ":", options_.port,
                                               " failed during a pipelined GET: ", ctx_->errstr));
    DropConnectionLocked();
  }
  out.assign(keys.size(), last);
  return out;
}

absl::StatusOr<bool> RedisStore::Contains(const BlobKey& key) {
  auto r = Command({"EXISTS", ChunkKey(key)});
  if (!r.ok()) return r.status();
  return (*r)->integer == 1;
}

absl::Status RedisStore::Delete(const BlobKey& key) {
  return Command({"EVAL", kDeleteScript, "2", ChunkKey(key), StatsKey()}).status();
}

absl::Status RedisStore::PutManifest(absl::string_view tenant, absl::string_view context_id,
                                     absl::string_view bytes) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  if (auto s = ValidateName("context id", context_id); !s.ok()) return s;
  return Command({"EVAL", kPutManifestScript, "2", TenantKey(tenant), StatsKey(),
                  std::string(context_id), std::string(bytes)})
      .status();
}

absl::StatusOr<std::string> RedisStore::GetManifest(absl::string_view tenant,
                                                    absl::string_view context_id) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  if (auto s = ValidateName("context id", context_id); !s.ok()) return s;
  auto r = Command({"HGET", TenantKey(tenant), std::string(context_id)});
  if (!r.ok()) return r.status();
  if ((*r)->type == REDIS_REPLY_NIL) {
    return absl::NotFoundError(
        absl::StrCat("context '", context_id, "' not found for tenant '", tenant, "'"));
  }
  return std::string((*r)->str, (*r)->len);
}

absl::Status RedisStore::DeleteManifest(absl::string_view tenant, absl::string_view context_id) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  if (auto s = ValidateName("context id", context_id); !s.ok()) return s;
  return Command({"EVAL", kDeleteManifestScript, "2", TenantKey(tenant), StatsKey(),
                  std::string(context_id)})
      .status();
}

absl::StatusOr<std::vector<std::string>> RedisStore::ListManifests(absl::string_view tenant) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  auto r = Command({"HKEYS", TenantKey(tenant)});
  if (!r.ok()) return r.status();
  std::vector<std::string> ids;
  for (size_t i = 0; i < (*r)->elements; ++i) {
    ids.emplace_back((*r)->element[i]->str, (*r)->element[i]->len);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

StoreStats RedisStore::Stats() {
  StoreStats s;
  std::lock_guard<std::mutex> lock(mu_);
  s.hits = hits_;
  s.misses = misses_;
  if (auto r = CommandLocked({"HMGET", StatsKey(), "bytes", "items", "manifests"}); r.ok()) {
    uint64_t* fields[3] = {&s.bytes, &s.items, &s.manifests};
    for (size_t i = 0; i < 3 && i < (*r)->elements; ++i) {
      const redisReply* e = (*r)->element[i];
      int64_t v = 0;
      if (e->type == REDIS_REPLY_STRING && absl::SimpleAtoi(absl::string_view(e->str, e->len), &v))
        *fields[i] = v > 0 ? static_cast<uint64_t>(v) : 0;
    }
  }
  if (auto r = CommandLocked({"INFO", "stats"}); r.ok() && (*r)->type == REDIS_REPLY_STRING) {
    for (absl::string_view line : absl::StrSplit(absl::string_view((*r)->str, (*r)->len), "\r\n")) {
      if (absl::ConsumePrefix(&line, "evicted_keys:")) {
        uint64_t v = 0;
        if (absl::SimpleAtoi(line, &v)) s.evictions = v;
      }
    }
  }
  return s;
}

}  // namespace ctx::store
