// Summary arithmetic: percentiles by hand, counts that add up, SLO violations, decision
// shares, the timeline, and the JSON forms.
#include "loadtest/summary.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "loadtest/load_generator.h"
#include "loadtest/workload.h"
#include "tests/loadtest/fake_client.h"

namespace lt = ctx::loadtest;
using namespace std::chrono_literals;

TEST_CASE("nearest-rank percentiles, computed by hand", "[loadtest]") {
  // The textbook example: 15 20 35 40 50 (given unsorted).
  const std::vector<double> v = {50, 15, 40, 20, 35};
  CHECK(lt::Percentile(v, 5) == 15);    // rank ceil(0.25) = 1
  CHECK(lt::Percentile(v, 30) == 20);   // rank ceil(1.5) = 2
  CHECK(lt::Percentile(v, 40) == 20);   // rank ceil(2.0) = 2
  CHECK(lt::Percentile(v, 50) == 35);   // rank ceil(2.5) = 3
  CHECK(lt::Percentile(v, 100) == 50);  // rank 5
  std::vector<double> h(100);
  for (int i = 0; i < 100; ++i) h[i] = 100 - i;  // 100 .. 1
  CHECK(lt::Percentile(h, 50) == 50);
  CHECK(lt::Percentile(h, 95) == 95);
  CHECK(lt::Percentile(h, 99) == 99);
  CHECK(lt::Percentile({}, 50) == 0);
  CHECK(lt::Percentile({7}, 99) == 7);
}

TEST_CASE("decision shares split a KV query over its chunks' final levels", "[loadtest]") {
  lt::QueryRecord r;
  r.plan_form = "kv";
  r.final_levels = {1, 1, 2, -1};
  const auto s = r.DecisionShares();
  CHECK(s.at("kv1") == Approx(0.5));
  CHECK(s.at("kv2") == Approx(0.25));
  CHECK(s.at("text") == Approx(0.25));
  r.plan_form = "ctext";
  CHECK(r.DecisionShares() == std::map<std::string, double>{{"ctext", 1.0}});
}

TEST_CASE("summary counts add up over a run with failures", "[loadtest]") {
  lt::testing::FakeClient fake(1ms, /*fail_every=*/7);
  lt::LoadOptions o;
  o.concurrency = 3;
  o.max_queries = 70;
  lt::RunResult run = lt::RunLoad(fake, {{"id", "doc"}}, {"q"}, o);
  lt::SummaryOptions so;
  so.slo_ttft_seconds = 0.55;
  so.duration_seconds = 2.0;          // fixed, so throughput is exact
  so.timeline_bucket_seconds = 1000;  // one bucket
  const lt::Summary s = lt::Summarize(run.records, so);
  CHECK(s.sent == 70);
  CHECK(s.failed == 10);  // indices 6, 13, ..., 69
  CHECK(s.ok == 60);
  CHECK(s.ok + s.failed == s.sent);
  uint64_t errors = 0;
  for (const auto& [code, n] : s.errors_by_code) errors += n;
  CHECK(errors == s.failed);
  CHECK(s.errors_by_code.at("UNAVAILABLE") == 10);
  double mix = 0;
  for (const auto& [label, n] : s.decision_mix) mix += n;
  CHECK(mix == Approx(static_cast<double>(s.ok)));
  uint64_t forms = 0;
  for (const auto& [form, n] : s.plan_forms) forms += n;
  CHECK(forms == s.ok);
  REQUIRE(s.timeline.size() == 1);
  CHECK(s.timeline[0].n == s.ok);
  CHECK(s.throughput_qps == Approx(30.0));

  // By hand: the OK indices' TTFTs are (i % 10 + 1) / 10 for i in 0..69 except i % 7 == 6.
  std::vector<double> expect;
  uint64_t over_slo = 0;
  for (int i = 0; i < 70; ++i) {
    if (i % 7 == 6) continue;
    expect.push_back((i % 10 + 1) / 10.0);
    over_slo += expect.back() > 0.55;
  }
  CHECK(s.ttft_p50 == lt::Percentile(expect, 50));
  CHECK(s.ttft_p99 == lt::Percentile(expect, 99));
  CHECK(s.ttft_max == Approx(1.0));
  CHECK(s.ttft_min == Approx(0.1));
  CHECK(s.slo_violations == over_slo + 10);
  CHECK(s.slo_violation_ratio == Approx((over_slo + 10) / 70.0));
  // Forms cycle text/ctext/kv by index; kv splits over kv0/kv1/kv2/text in quarters.
  uint64_t kv_queries = 0, text_queries = 0;
  for (int i = 0; i < 70; ++i) {
    if (i % 7 == 6) continue;
    kv_queries += i % 3 == 2;
    text_queries += i % 3 == 0;
  }
  CHECK(s.decision_mix.at("kv0") == Approx(kv_queries / 4.0));
  CHECK(s.decision_mix.at("text") == Approx(text_queries + kv_queries / 4.0));
}

TEST_CASE("summary JSON and record JSON carry the fields the plots read", "[loadtest]") {
  lt::QueryRecord r;
  r.ttft_seconds = 0.25;
  r.plan_form = "kv";
  r.final_levels = {2, 2};
  r.bytes = {{"kv", 2, 1000, 2}};
  lt::SummaryOptions so;
  so.label = "kv2@10mbit";
  so.duration_seconds = 1;
  const auto j = lt::ToJson(lt::Summarize({r}, so), so);
  CHECK(j["label"] == "kv2@10mbit");
  CHECK(j["ttft_s"]["p99"].get<double>() == Approx(0.25));
  CHECK(j["decision_mix"]["kv2"].get<double>() == Approx(1.0));
  CHECK(j["bytes_by_label"]["kv2"].get<uint64_t>() == 1000);
  CHECK(j["timeline"].size() == 1);
  const auto rj = lt::ToJson(r);
  CHECK(rj["decision"]["kv2"].get<double>() == Approx(1.0));
  CHECK(rj["code"] == 0);
  CHECK(lt::StatusCodeName(4) == "DEADLINE_EXCEEDED");
  CHECK(lt::StatusCodeName(99) == "CODE_99");
}

TEST_CASE("workload files: documents, questions, remembered context ids", "[loadtest]") {
  auto docs = lt::LoadDocuments(std::string(CTX_SOURCE_DIR) + "/loadtest/data/docs");
  REQUIRE(docs.ok());
  CHECK(docs->size() >= 3);
  for (const auto& d : *docs) CHECK(d.text.size() > 1000);
  auto q = lt::LoadQuestions(std::string(CTX_SOURCE_DIR) + "/loadtest/data/questions.txt");
  REQUIRE(q.ok());
  CHECK(q->size() >= 3);

  const auto dir = std::filesystem::temp_directory_path() / "ctxload_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "contexts").string();
  std::filesystem::remove(path);
  auto none = lt::LoadContextsFile(path);
  REQUIRE(none.ok());
  CHECK(none->empty());
  REQUIRE(lt::SaveContextsFile(path, {{"abc", "a.txt"}, {"def", "b c.txt"}}).ok());
  auto back = lt::LoadContextsFile(path);
  REQUIRE(back.ok());
  REQUIRE(back->size() == 2);
  CHECK((*back)[1].id == "def");
  CHECK((*back)[1].name == "b c.txt");
  std::ofstream(path) << "no-tab-here\n";
  CHECK(!lt::LoadContextsFile(path).ok());
  CHECK(!lt::LoadDocuments((dir / "missing").string()).ok());
  std::filesystem::remove_all(dir);
}
