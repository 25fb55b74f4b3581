// Chunk keys: pinned test vector, chain semantics, prefix sharing, tenant/model separation.
#include "common/store/chunk_key.h"

#include <xxhash.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "common/store/chunk_store.h"

using namespace ctx::store;

namespace {

ModelFingerprint TestFingerprint() {
  ModelFingerprint fp;
  for (int i = 0; i < 16; ++i) fp[i] = static_cast<uint8_t>(i);
  return fp;
}

// Builds the documented byte encoding by hand (independently of chunk_key.cc).
std::string HandEncoding(const std::array<uint8_t, 16>& prev, const std::string& tenant,
                         const std::vector<uint32_t>& tokens) {
  std::string b = "ctxchk01";
  b.append(reinterpret_cast<const char*>(prev.data()), 16);
  for (int i = 0; i < 16; ++i) b.push_back(static_cast<char>(i));
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  u32(static_cast<uint32_t>(tenant.size()));
  b += tenant;
  u32(static_cast<uint32_t>(tokens.size()));
  for (uint32_t t : tokens) u32(t);
  return b;
}

std::string CanonicalHex(const std::string& bytes) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(bytes.data(), bytes.size()));
  ChunkHash h;
  std::memcpy(h.bytes.data(), c.digest, 16);
  return h.Hex();
}

}  // namespace

TEST_CASE("chunk hash: pinned test vector (never change)", "[store][key]") {
  const std::vector<uint32_t> tokens = {1, 2, 100000};
  const ChunkHash h = ComputeChunkHash(ChunkHash{}, TestFingerprint(), "acme", tokens);
  // Value pinned forever: changing it orphans every stored chunk in every deployment.
  CHECK(h.Hex() == "55bec17e173e06c801b0bcc9b1bfe6ed");
  // And it is exactly XXH3_128 over the documented encoding, rebuilt by hand.
  const std::string hand = HandEncoding({}, "acme", tokens);
  CHECK(ChunkHashInput(ChunkHash{}, TestFingerprint(), "acme", tokens) == hand);
  CHECK(hand.size() == 8 + 16 + 16 + 4 + 4 + 4 + 12);
  CHECK(CanonicalHex(hand) == h.Hex());
}

TEST_CASE("chunk hash: second link chains over the first", "[store][key]") {
  std::vector<uint32_t> tokens(8);
  for (uint32_t i = 0; i < 8; ++i) tokens[i] = 1000 + i;
  auto hashes = ComputeChunkHashes(tokens, 4, TestFingerprint(), "t1");
  REQUIRE(hashes.ok());
  REQUIRE(hashes->size() == 2);
  const std::vector<uint32_t> second(tokens.begin() + 4, tokens.end());
  CHECK(CanonicalHex(HandEncoding((*hashes)[0].bytes, "t1", second)) == (*hashes)[1].Hex());
}

TEST_CASE("chunk hash: identical prefixes share chunks, divergence changes the rest",
          "[store][key]") {
  std::vector<uint32_t> a(40), b(40);
  for (uint32_t i = 0; i < 40; ++i) a[i] = b[i] = i * 7 + 3;
  b[25] = 99999;  // diverge inside chunk 2 (chunk size 10)
  auto ha = ComputeChunkHashes(a, 10, TestFingerprint(), "t");
  auto hb = ComputeChunkHashes(b, 10, TestFingerprint(), "t");
  REQUIRE(ha.ok());
  REQUIRE(hb.ok());
  REQUIRE(ha->size() == 4);
  CHECK((*ha)[0] == (*hb)[0]);
  CHECK((*ha)[1] == (*hb)[1]);
  CHECK((*ha)[2] != (*hb)[2]);
  CHECK((*ha)[3] != (*hb)[3]);  // the chain: later chunks name the whole prefix
  // A longer context with the same start shares the start's chunks.
  std::vector<uint32_t> longer = a;
  longer.insert(longer.end(), {5, 6, 7, 8, 9, 10, 11, 12, 13, 14});
  auto hl = ComputeChunkHashes(longer, 10, TestFingerprint(), "t");
  REQUIRE(hl.ok());
  REQUIRE(hl->size() == 5);
  for (size_t i = 0; i < 4; ++i) CHECK((*hl)[i] == (*ha)[i]);
}

TEST_CASE("chunk hash: tenants and models never share chunks", "[store][key]") {
  std::vector<uint32_t> t(20, 42);
  auto h1 = ComputeChunkHashes(t, 10, TestFingerprint(), "tenant-a");
  auto h2 = ComputeChunkHashes(t, 10, TestFingerprint(), "tenant-b");
  ModelFingerprint other = TestFingerprint();
  other[15] ^= 1;
  auto h3 = ComputeChunkHashes(t, 10, other, "tenant-a");
  REQUIRE(h1.ok());
  REQUIRE(h2.ok());
  REQUIRE(h3.ok());
  for (size_t i = 0; i < 2; ++i) {
    CHECK((*h1)[i] != (*h2)[i]);
    CHECK((*h1)[i] != (*h3)[i]);
  }
  // Length-prefixing: tenant "ab" + tokens is not tenant "a" + other bytes.
  CHECK(ComputeChunkHash({}, TestFingerprint(), "ab", t) !=
        ComputeChunkHash({}, TestFingerprint(), "a", t));
}

TEST_CASE("chunk hashes: partial trailing chunk and bad chunk size", "[store][key]") {
  std::vector<uint32_t> t(25, 1);
  auto full = ComputeChunkHashes(t, 10, TestFingerprint(), "t");
  auto with_partial = ComputeChunkHashes(t, 10, TestFingerprint(), "t", true);
  REQUIRE(full.ok());
  REQUIRE(with_partial.ok());
  CHECK(full->size() == 2);
  CHECK(with_partial->size() == 3);
  CHECK((*with_partial)[1] == (*full)[1]);
  CHECK(ComputeChunkHashes(t, 0, TestFingerprint(), "t").status().code() ==
        absl::StatusCode::kInvalidArgument);
  auto empty = ComputeChunkHashes({}, 10, TestFingerprint(), "t");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
}

TEST_CASE("chunk hash and blob key: string forms round trip", "[store][key]") {
  const ChunkHash h = ComputeChunkHash({}, TestFingerprint(), "x", std::vector<uint32_t>{9});
  auto back = ChunkHash::FromHex(h.Hex());
  REQUIRE(back.ok());
  CHECK(*back == h);
  CHECK_FALSE(ChunkHash::FromHex("zz").ok());
  CHECK_FALSE(ChunkHash::FromHex(std::string(32, 'g')).ok());
  BlobKey k{h, 2, 3};
  CHECK(k.ToString() == h.Hex() + ".e2.l3");
  auto parsed = BlobKey::Parse(k.ToString());
  REQUIRE(parsed.ok());
  CHECK(*parsed == k);
  CHECK_FALSE(BlobKey::Parse(h.Hex() + ".e2").ok());
  CHECK_FALSE(BlobKey::Parse(h.Hex() + ".e.l1").ok());
  CHECK_FALSE(BlobKey::Parse(h.Hex() + ".e1.l1x").ok());
}
