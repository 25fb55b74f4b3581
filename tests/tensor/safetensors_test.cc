// The safetensors reader rejects every malformed header with a clear error and reads
// valid files (sharded checkpoints included) exactly.
#include "common/tensor/safetensors.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/tensor/dtype.h"

namespace ctx::tensor {
namespace {

// A safetensors file with the given JSON header and data section.
std::vector<std::byte> File(const std::string& header, size_t data_bytes) {
  std::vector<std::byte> f(8 + header.size() + data_bytes);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f[i] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  std::memcpy(f.data() + 8, header.data(), header.size());
  for (size_t i = 0; i < data_bytes; ++i) f[8 + header.size() + i] = static_cast<std::byte>(i);
  return f;
}

absl::Status ParseStatus(const std::vector<std::byte>& f) {
  return SafetensorsIndex::Parse(f).status();
}

}  // namespace

TEST_CASE("a valid safetensors buffer parses with its tensors and metadata") {
  const auto f = File(R"({"__metadata__":{"format":"pt"},)"
                      R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                      R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}})",
                      22);
  auto index = SafetensorsIndex::Parse(f);
  REQUIRE(index.ok());
  CHECK(index->tensors().size() == 2);
  CHECK(index->metadata().at("format") == "pt");
  const TensorView* b = index->Find("b");
  REQUIRE(b != nullptr);
  CHECK(b->dtype == DType::kBF16);
  CHECK(b->NumElements() == 3);
  CHECK(b->bytes.size() == 6);
  CHECK(std::to_integer<int>(b->bytes[0]) == 16);
  CHECK(index->Find("missing") == nullptr);
}

TEST_CASE("malformed safetensors headers are rejected with DataLoss") {
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  SECTION("shorter than the length prefix") {
    std::vector<std::byte> f(5);
    CHECK(absl::IsDataLoss(ParseStatus(f)));
  }
  SECTION("header length past the end of the file") {
    auto f = File(good, 8);
    f[0] = std::byte{0xff};
    CHECK(absl::IsDataLoss(ParseStatus(f)));
  }
  SECTION("header is not JSON") { CHECK(absl::IsDataLoss(ParseStatus(File("{nope", 8)))); }
  SECTION("unknown dtype") {
    CHECK(absl::IsDataLoss(
        ParseStatus(File(R"({"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2))));
  }
  SECTION("offsets outside the data section") {
    CHECK(absl::IsDataLoss(ParseStatus(File(good, 4))));
  }
  SECTION("byte count does not match the shape") {
    CHECK(absl::IsDataLoss(
        ParseStatus(File(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8))));
  }
  SECTION("overlapping tensors") {
    CHECK(absl::IsDataLoss(
        ParseStatus(File(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         12))));
  }
  SECTION("begin after end") {
    CHECK(absl::IsDataLoss(
        ParseStatus(File(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8))));
  }
  SECTION("negative dimension") {
    CHECK(absl::IsDataLoss(
        ParseStatus(File(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8))));
  }
  SECTION("missing field") {
    CHECK(absl::IsDataLoss(ParseStatus(File(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8))));
  }
}

TEST_CASE("every truncation of a valid file is rejected, never read past") {
  const auto f = File(R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", 8);
  REQUIRE(SafetensorsIndex::Parse(f).ok());
  for (size_t n = 0; n < f.size(); ++n) {
    std::vector<std::byte> cut(f.begin(), f.begin() + static_cast<long>(n));
    CHECK_FALSE(SafetensorsIndex::Parse(cut).ok());
  }
}

TEST_CASE("a sharded checkpoint opens through its index") {
  auto w = CheckpointWeights::Open(std::string(CTX_SOURCE_DIR) + "/models/rand-llama");
  REQUIRE(w.ok());
  const int64_t shape[] = {8192, 64};
  auto embed = w->GetFloat("model.embed_tokens.weight", shape);
  REQUIRE(embed.ok());
  CHECK(embed->size() == 8192u * 64u);
  const int64_t wrong[] = {64, 8192};
  CHECK(absl::IsInvalidArgument(w->GetFloat("model.embed_tokens.weight", wrong).status()));
  CHECK(absl::IsNotFound(w->Get("model.no_such.weight").status()));
  CHECK(absl::IsNotFound(CheckpointWeights::Open("/nonexistent/model").status()));
}

TEST_CASE("half and bfloat16 conversions round to nearest even and round-trip") {
  CHECK(HalfToFloat(FloatToHalf(1.0f)) == 1.0f);
  CHECK(HalfToFloat(FloatToHalf(65504.0f)) == 65504.0f);
  CHECK(std::isinf(HalfToFloat(FloatToHalf(65520.0f))));
  CHECK(HalfToFloat(FloatToHalf(5.9604645e-8f)) == 5.9604645e-8f);  // smallest subnormal
  CHECK(HalfToFloat(FloatToHalf(2.9802322e-8f)) == 0.0f);           // half of it: ties to even
  CHECK(FloatToHalf(1.0f + 1.0f / 2048) == FloatToHalf(1.0f));      // tie -> even mantissa
  CHECK(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    REQUIRE(FloatToHalf(f) == h);  // every half value round-trips through float
  }
  CHECK(BF16ToFloat(FloatToBF16(3.140625f)) == 3.140625f);
  CHECK(FloatToBF16(1.0f + 1.0f / 256) == FloatToBF16(1.0f));  // tie -> even
}

}  // namespace ctx::tensor
