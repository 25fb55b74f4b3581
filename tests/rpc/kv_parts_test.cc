#include "common/rpc/kv_parts.h"

#include <catch2/catch.hpp>
#include <string>

namespace ctx::rpc {
namespace {

ctxstream::v1::ChunkRef Ref(uint32_t index) {
  ctxstream::v1::ChunkRef ref;
  ref.set_chunk_index(index);
  ref.set_token_begin(index * 256);
  ref.set_token_end(index * 256 + 256);
  return ref;
}

std::string Bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 131 + 7);
  return s;
}

}  // namespace

TEST_CASE("a chunk split into parts reassembles exactly") {
  const size_t size = GENERATE(size_t{0}, size_t{1}, size_t{1000}, size_t{1 << 20},
                               size_t{(1 << 20) + 1}, size_t{3 * (1 << 20) + 17});
  const std::string bytes = Bytes(size);
  const auto parts = SplitKvChunk(Ref(3), ctxstream::v1::KV_ENCODING_CACHEGEN, 2, bytes);
  CHECK(parts.size() == std::max<size_t>(1, (size + kMaxKvPartBytes - 1) / kMaxKvPartBytes));
  for (const auto& p : parts) CHECK(p.data().size() <= kMaxKvPartBytes);
  KvPartAssembler assembler(16 << 20);
  std::optional<KvChunk> chunk;
  for (size_t i = 0; i < parts.size(); ++i) {
    auto r = assembler.Add(parts[i]);
    REQUIRE(r.ok());
    CHECK(r->has_value() == (i + 1 == parts.size()));
    if (r->has_value()) chunk = std::move(**r);
  }
  REQUIRE(chunk.has_value());
  CHECK(chunk->bytes == bytes);
  CHECK(chunk->level == 2);
  CHECK(chunk->ref.chunk_index() == 3);
  CHECK_FALSE(assembler.in_progress());
}

TEST_CASE("the assembler rejects gaps, overlaps, oversize and inconsistent parts") {
  const std::string bytes = Bytes(2500);
  auto parts = SplitKvChunk(Ref(0), ctxstream::v1::KV_ENCODING_RAW, -1, bytes, 1000);
  REQUIRE(parts.size() == 3);

  SECTION("missing middle part") {
    KvPartAssembler a(1 << 20);
    REQUIRE(a.Add(parts[0]).ok());
    CHECK(absl::IsInvalidArgument(a.Add(parts[2]).status()));
  }
  SECTION("repeated part") {
    KvPartAssembler a(1 << 20);
    REQUIRE(a.Add(parts[0]).ok());
    CHECK_FALSE(a.Add(parts[0]).ok());
  }
  SECTION("first part not at offset 0") {
    KvPartAssembler a(1 << 20);
    CHECK_FALSE(a.Add(parts[1]).ok());
  }
  SECTION("announced size above the limit") {
    KvPartAssembler a(2000);
    CHECK(absl::IsInvalidArgument(a.Add(parts[0]).status()));
  }
  SECTION("last part too early") {
    KvPartAssembler a(1 << 20);
    parts[0].set_last(true);
    CHECK_FALSE(a.Add(parts[0]).ok());
  }
  SECTION("level changes within a chunk") {
    KvPartAssembler a(1 << 20);
    REQUIRE(a.Add(parts[0]).ok());
    parts[1].set_level(5);
    CHECK_FALSE(a.Add(parts[1]).ok());
  }
  SECTION("data past total_bytes") {
    KvPartAssembler a(1 << 20);
    parts[0].set_total_bytes(500);
    CHECK_FALSE(a.Add(parts[0]).ok());
  }
  SECTION("after an error the assembler starts fresh") {
    KvPartAssembler a(1 << 20);
    REQUIRE(a.Add(parts[0]).ok());
    CHECK_FALSE(a.Add(parts[2]).ok());
    for (const auto& p : parts) REQUIRE(a.Add(p).ok());
  }
}

}  // namespace ctx::rpc
