// Replays the inputs in tests/fuzz/regressions/<target>/ (crashes found by fuzzing, kept
// after their fix) through the fuzz targets' entry points in the normal test build, so a
// regression fails ctest without clang or libFuzzer. The targets trap on a broken invariant.
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

extern "C" int FuzzCodecDecode(const uint8_t* data, size_t size);
extern "C" int FuzzCodecProfile(const uint8_t* data, size_t size);

namespace {

int ReplayAll(const std::string& target, int (*entry)(const uint8_t*, size_t)) {
  const std::filesystem::path dir =
      std::filesystem::path(CTX_SOURCE_DIR) / "tests/fuzz/regressions" / target;
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string bytes = ss.str();
    INFO(e.path().string());
    CHECK(entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == 0);
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("fuzz regressions: codec decoder", "[fuzz]") {
  CHECK(ReplayAll("fuzz_codec_decode", FuzzCodecDecode) >= 2);
}

TEST_CASE("fuzz regressions: codec profile parser", "[fuzz]") {
  CHECK(ReplayAll("fuzz_codec_profile", FuzzCodecProfile) >= 1);
}
