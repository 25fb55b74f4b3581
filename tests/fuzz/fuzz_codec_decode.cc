// libFuzzer target: KvCodec::Decode on arbitrary bytes must return an error or a chunk,
// never crash, read out of bounds or allocate without bound.
//
// Input: one byte of mode, then the chunk bytes. Mode bit 0 set: the header checksum is
// recomputed first, so mutations reach the payload decoders instead of stopping at the
// XXH3 check (which would reject almost every mutated input). Bit 1: decode with the
// expected fingerprint/geometry options.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/codec/wire_format.h"
#include "tests/fuzz/fuzz_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ctx;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((mode & 1) && bytes.size() >= codec::kChunkHeaderSize) {
    const absl::string_view all(bytes);
    const uint64_t sum =
        codec::ChunkChecksum(all.substr(0, 88), all.substr(codec::kChunkHeaderSize));
    std::memcpy(bytes.data() + 88, &sum, sizeof(sum));  // little-endian host, as on the wire
  }
  codec::DecodeOptions options;
  if (mode & 2) {
    options.expected_geometry = fuzz::kGeometry;
    codec::ModelFingerprint fp;
    fp.fill(0x5a);
    options.expected_fingerprint = fp;
  }
  // Decode allocates the whole chunk before decoding. Since wire format v2 a chunk carries
  // >= 1 slot, <= kMaxChunkTokens tokens and >= 1 payload byte per (slot, token), so the
  // allocation is bounded by the payload, but a ~64 KiB input with 64 layers x 65535 channels
  // can still ask for ~2^30 floats; such inputs are skipped here (they only measure memset
  // speed): the fuzzer's memory limit is 2 GiB.
  if (absl::StatusOr<codec::ParsedChunk> p = codec::ParseChunk(bytes); p.ok()) {
    const codec::ChunkHeader& h = p->header;
    if (uint64_t{h.token_count} * h.geometry.channels() * h.geometry.slots() > (1u << 24)) {
      return 0;
    }
  }
  absl::StatusOr<codec::DecodedChunk> decoded = fuzz::ProfileCodec().Decode(bytes, options);
  if (decoded.ok()) {
    // A decoded chunk is self-consistent: kv holds layers * 2 * T * C floats.
    const codec::ChunkHeader& h = decoded->header;
    const size_t want = static_cast<size_t>(h.geometry.slots()) * h.token_count *
                        static_cast<size_t>(h.geometry.channels());
    if (decoded->kv.size() != want) __builtin_trap();
  }
  return 0;
}
