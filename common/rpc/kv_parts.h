// KV chunk bytes travel as KvChunkPart messages of at most 1 MiB (never relying on gRPC's
// 4 MiB default). KvPartSplitter cuts an encoded chunk into parts; KvPartAssembler puts
// parts back together, rejecting anything inconsistent (gaps, overlaps, size changes,
// sizes over the limit) with InvalidArgument so a bad sender never crashes a server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ctxstream/v1/common.pb.h"

namespace ctx::rpc {

inline constexpr size_t kMaxKvPartBytes = 1 << 20;

// Splits `bytes` into parts of at most `max_part_bytes` carrying `ref`, `encoding` and
// `level`. An empty chunk yields one empty part with last = true.
std::vector<ctxstream::v1::KvChunkPart> SplitKvChunk(const ctxstream::v1::ChunkRef& ref,
                                                     ctxstream::v1::KvEncoding encoding,
                                                     int32_t level, const std::string& bytes,
                                                     size_t max_part_bytes = kMaxKvPartBytes);

// A whole chunk reassembled from its parts.
struct KvChunk {
  ctxstream::v1::ChunkRef ref;
  ctxstream::v1::KvEncoding encoding = ctxstream::v1::KV_ENCODING_UNSPECIFIED;
  int32_t level = -1;
  std::string bytes;
};

class KvPartAssembler {
 public:
  // `max_chunk_bytes` bounds total_bytes (memory a sender can make us allocate).
  explicit KvPartAssembler(uint64_t max_chunk_bytes) : max_chunk_bytes_(max_chunk_bytes) {}

  // Adds a part. Returns the completed chunk when `part.last()`, nullopt while more parts
  // of the current chunk are expected, or an error for an inconsistent part.
  absl::StatusOr<std::optional<KvChunk>> Add(const ctxstream::v1::KvChunkPart& part);

  // True while a chunk is partially received.
  bool in_progress() const { return current_.has_value(); }

 private:
  uint64_t max_chunk_bytes_;
  uint64_t total_ = 0;
  std::optional<KvChunk> current_;
};

}  // namespace ctx::rpc
