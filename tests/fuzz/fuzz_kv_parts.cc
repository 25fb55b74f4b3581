// libFuzzer target: KvPartAssembler fed a sequence of KvChunkPart messages decoded from the
// input (u16 little-endian length + serialized KvChunkPart, repeated). Whatever a sender
// streams, the assembler returns chunks or errors, never holds more than its limit, and a
// completed chunk's size equals the total_bytes its parts announced.
#include <cstddef>
#include <cstdint>

#include "common/rpc/kv_parts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t kLimit = 4096;
  ctx::rpc::KvPartAssembler assembler(kLimit);
  size_t pos = 0;
  while (pos + 2 <= size) {
    const size_t len = data[pos] | (size_t{data[pos + 1]} << 8);
    pos += 2;
    if (len > size - pos) break;
    ctxstream::v1::KvChunkPart part;
    const bool parsed = part.ParseFromArray(data + pos, static_cast<int>(len));
    pos += len;
    if (!parsed) continue;
    absl::StatusOr<std::optional<ctx::rpc::KvChunk>> r = assembler.Add(part);
    if (!r.ok()) {
      assembler = ctx::rpc::KvPartAssembler(kLimit);  // a server ends the stream here
      continue;
    }
    if (r->has_value() &&
        ((*r)->bytes.size() > kLimit || (*r)->bytes.size() != part.total_bytes())) {
      __builtin_trap();
    }
  }
  return 0;
}
