// libFuzzer target: ParseProfile on arbitrary bytes; a parsed profile must validate, be
// usable by KvCodec::Create and serialize back to bytes that parse to the same tables.
//
// Input: one byte of mode, then the profile bytes. Mode bit 0 set: the trailing XXH3-64
// checksum is recomputed first, so mutations reach the field checks behind it.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/codec/codec.h"
#include "common/codec/profile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ctx::codec;
  if (size < 1) return 0;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) && bytes.size() >= 8) {
    const uint64_t sum = XXH3_64bits(bytes.data(), bytes.size() - 8);
    std::memcpy(bytes.data() + bytes.size() - 8, &sum, sizeof(sum));  // little-endian host
  }
  absl::StatusOr<CodecProfile> p = ParseProfile(bytes);
  if (!p.ok()) return 0;
  if (!ValidateProfile(*p).ok()) __builtin_trap();  // ParseProfile promises a valid profile
  const std::string again = SerializeProfile(*p);
  absl::StatusOr<CodecProfile> q = ParseProfile(again);
  if (!q.ok() || q->TablesHash() != p->TablesHash()) __builtin_trap();
  (void)KvCodec::Create(*std::move(p));
  return 0;
}
