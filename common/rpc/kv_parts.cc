#include "common/rpc/kv_parts.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ctx::rpc {

std::vector<ctxstream::v1::KvChunkPart> SplitKvChunk(const ctxstream::v1::ChunkRef& ref,
                                                     ctxstream::v1::KvEncoding encoding,
                                                     int32_t level, const std::string& bytes,
                                                     size_t max_part_bytes) {
  std::vector<ctxstream::v1::KvChunkPart> parts;
  size_t offset = 0;
  do {
    const size_t n = std::min(max_part_bytes, bytes.size() - offset);
    ctxstream::v1::KvChunkPart& p = parts.emplace_back();
    *p.mutable_ref() = ref;
    p.set_encoding(encoding);
    p.set_level(level);
    p.set_offset(offset);
    p.set_total_bytes(bytes.size());
    p.set_data(bytes.substr(offset, n));
    offset += n;
    p.set_last(offset == bytes.size());
  } while (offset < bytes.size());
  return parts;
}

absl::StatusOr<std::optional<KvChunk>> KvPartAssembler::Add(
    const ctxstream::v1::KvChunkPart& part) {
  const auto bad = [&](absl::string_view why) {
    current_.reset();
    return absl::InvalidArgumentError(
        absl::StrCat("KV part of chunk ", part.ref().chunk_index(), ": ", why));
  };
  if (part.data().size() > kMaxKvPartBytes) {
    return bad(absl::StrCat("part of ", part.data().size(), " bytes exceeds the 1 MiB limit"));
  }
  if (!current_.has_value()) {
    if (part.offset() != 0) return bad("first part does not start at offset 0");
    if (part.total_bytes() > max_chunk_bytes_) {
      return bad(absl::StrCat("chunk of ", part.total_bytes(), " bytes exceeds the limit of ",
                              max_chunk_bytes_));
    }
    current_.emplace();
    current_->ref = part.ref();
    current_->encoding = part.encoding();
    current_->level = part.level();
    total_ = part.total_bytes();
    current_->bytes.reserve(total_);
  } else if (part.ref().chunk_index() != current_->ref.chunk_index() ||
             part.total_bytes() != total_ || part.encoding() != current_->encoding ||
             part.level() != current_->level) {
    return bad("part does not continue the chunk in progress");
  }
  if (part.offset() != current_->bytes.size()) {
    return bad(
        absl::StrCat("part at offset ", part.offset(), ", expected ", current_->bytes.size()));
  }
  if (current_->bytes.size() + part.data().size() > total_) {
    return bad("parts exceed the announced total_bytes");
  }
  current_->bytes.append(part.data());
  if (!part.last()) return std::optional<KvChunk>();
  if (current_->bytes.size() != total_) {
    return bad(
        absl::StrCat("last part leaves ", total_ - current_->bytes.size(), " bytes missing"));
  }
  std::optional<KvChunk> done = std::move(current_);
  current_.reset();
  return done;
}

}  // namespace ctx::rpc
