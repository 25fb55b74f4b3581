// kvcache's egress schedule (the emulated link the controller's bandwidth tests drive).
#include "services/kvcache/egress_schedule.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "services/kvcache/egress_limiter.h"

namespace ctx::kvcache {
namespace {

TEST_CASE("egress schedule: parse, chunk and time steps, last applicable step wins") {
  auto s = EgressSchedule::Parse("4e6, 2e5@3c ,4e6@6c");
  REQUIRE(s.ok());
  REQUIRE(s->steps().size() == 3);
  CHECK(s->RateAt(0, 0, 99) == 4e6);
  CHECK(s->RateAt(2, 10, 99) == 4e6);
  CHECK(s->RateAt(3, 0, 99) == 2e5);
  CHECK(s->RateAt(5, 0, 99) == 2e5);
  CHECK(s->RateAt(6, 0, 99) == 4e6);

  auto t = EgressSchedule::Parse("1e6@0.5s,0@2s");
  REQUIRE(t.ok());
  CHECK(t->RateAt(0, 0.1, 7) == 7);  // before any step: the base rate
  CHECK(t->RateAt(9, 0.5, 7) == 1e6);
  CHECK(t->RateAt(0, 3, 7) == 0);  // 0 = unlimited

  CHECK(EgressSchedule::Parse("")->empty());
  CHECK(EgressSchedule::Parse("  \n")->empty());
  for (const char* bad : {"abc", "1e6@3", "1e6@xc", "-5", "1e6@-1s", "1e6@"}) {
    INFO(bad);
    const auto b = EgressSchedule::Parse(bad);
    CHECK(b.status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("egress schedule from a file: missing or empty is no schedule, bad names the file") {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string path = (dir / "ctx_egress_schedule_test").string();
  std::filesystem::remove(path);
  CHECK(EgressSchedule::ReadFile(path)->empty());
  std::ofstream(path) << "";
  CHECK(EgressSchedule::ReadFile(path)->empty());
  std::ofstream(path) << "5e5\n1e6@2c\n";
  auto s = EgressSchedule::ReadFile(path);
  REQUIRE(s.ok());
  CHECK(s->RateAt(1, 0, 0) == 5e5);
  CHECK(s->RateAt(2, 0, 0) == 1e6);
  std::ofstream(path) << "fast";
  auto b = EgressSchedule::ReadFile(path);
  CHECK(!b.ok());
  CHECK(b.status().message().find(path) != std::string::npos);
  std::filesystem::remove(path);
}

TEST_CASE("egress limiter: SetRate switches between limited and unlimited") {
  EgressLimiter l(0, 0);
  CHECK(!l.limited());
  l.SetRate(1e6, 64 * 1024);
  CHECK(l.limited());
  CHECK(l.rate() == 1e6);
  CHECK(l.PartBytes(1 << 20) == 50000);  // max(16 KiB, rate / 20)
  l.Acquire(64 * 1024);                  // the new bucket starts full: no wait
  l.SetRate(0, 64 * 1024);
  CHECK(!l.limited());
  CHECK(l.PartBytes(1 << 20) == 1 << 20);
}

}  // namespace
}  // namespace ctx::kvcache
