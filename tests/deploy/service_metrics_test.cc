// The metric catalog (docs/metrics.md) as code: every service's families register, label
// values stay in their bounded sets, the exposition passes `promtool check metrics`.
#include "common/obs/service_metrics.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "tests/deploy/deploy_support.h"

namespace {

using ctx::obs::Form;
using ctx::obs::Stage;
using ctx::testing::ExportedFamilyNames;
using ctx::testing::ServiceExposition;

}  // namespace

TEST_CASE("label values are normalized to bounded sets", "[deploy][metrics]") {
  CHECK(ctx::obs::FormLabel(Form::kCompressedText) == "compressed_text");
  CHECK(ctx::obs::FormLabel(std::string("kv")) == "kv");
  CHECK(ctx::obs::FormLabel(std::string("KV; drop table")) == "unknown");
  CHECK(ctx::obs::LevelLabel(Form::kKv, 0) == "0");
  CHECK(ctx::obs::LevelLabel(Form::kKv, 7) == "7");
  CHECK(ctx::obs::LevelLabel(Form::kKv, 8) == "none");
  CHECK(ctx::obs::LevelLabel(Form::kKv, -1) == "none");
  CHECK(ctx::obs::LevelLabel(Form::kText, 3) == "none");
  CHECK(ctx::obs::StageLabel(Stage::kCompress) == "compress");
  CHECK(ctx::obs::BackendLabel("redis") == "redis");
  CHECK(ctx::obs::BackendLabel("s3") == "unknown");
  CHECK(ctx::obs::LinkLabel("a b\"c") == "a_b_c");
  CHECK(ctx::obs::LinkLabel("") == "unknown");
  CHECK(ctx::obs::LinkLabel(std::string(100, 'x')).size() == 64);
  // A churning peer set collapses into "other" after kMaxLinks distinct names.
  std::set<std::string> labels;
  for (int n = 0; n < 3 * ctx::obs::kMaxLinks; ++n) {
    labels.insert(ctx::obs::LinkLabel("peer-" + std::to_string(n)));
  }
  CHECK(labels.size() <= static_cast<size_t>(ctx::obs::kMaxLinks) + 1);
  CHECK(labels.count("other") == 1);
}

TEST_CASE("bucket layouts span the catalogued ranges", "[deploy][metrics]") {
  const auto tp = ctx::obs::ThroughputBuckets();
  REQUIRE(tp.size() == 11);
  CHECK(tp.front() == 16 * 1024.0);
  CHECK(tp.back() == 16 * 1024.0 * 1024 * 1024);
  const auto pr = ctx::obs::PredictionRatioBuckets();
  CHECK(pr.front() == 0.25);
  CHECK(pr.back() == 4);
}

TEST_CASE("service metrics expose the catalogued names and pass promtool", "[deploy][metrics]") {
  ctx::testing::RecordOneOfEverything();
  const std::string text = ServiceExposition();
  const std::set<std::string> families = ExportedFamilyNames();
  for (const char* name : {
           "ctxstream_controller_ttft_seconds",
           "ctxstream_controller_predicted_ttft_seconds",
           "ctxstream_controller_ttft_prediction_ratio",
           "ctxstream_controller_stage_duration_seconds",
           "ctxstream_controller_queries_total",
           "ctxstream_controller_slo_violations_total",
           "ctxstream_controller_decisions_total",
           "ctxstream_controller_bandwidth_estimate_bytes_per_second",
           "ctxstream_context_bytes_total",
           "ctxstream_inference_prefill_tokens_total",
           "ctxstream_inference_decode_tokens_total",
           "ctxstream_inference_fetch_throughput_bytes_per_second",
           "ctxstream_codec_decode_seconds_total",
           "ctxstream_codec_encode_seconds_total",
           "ctxstream_codec_compression_ratio",
           "ctxstream_kvcache_ingest_chunks_total",
           "ctxstream_store_hits_total",
           "ctxstream_store_misses_total",
           "ctxstream_store_size_bytes",
           "ctxstream_store_capacity_bytes",
           "ctxstream_compressor_compression_ratio",
       }) {
    INFO(name);
    CHECK(families.count(name) == 1);
  }
  // Values recorded above appear with their normalized labels.
  CHECK(text.find(
            "ctxstream_controller_decisions_total{form=\"kv\",level=\"2\",phase=\"initial\"} 1") !=
        std::string::npos);
  CHECK(text.find("ctxstream_context_bytes_total{form=\"text\",level=\"none\"} 4096") !=
        std::string::npos);
  CHECK(text.find("ctxstream_context_bytes_total{form=\"kv\",level=\"2\"} 1048576") !=
        std::string::npos);
  CHECK(text.find("ctxstream_codec_compression_ratio_bucket{level=\"2\",le=\"8\"} 1") !=
        std::string::npos);

  // Naming conventions: prefix, no colons, counters end in _total, histograms carry a unit
  // or are ratios.
  for (const auto& name : families) {
    INFO(name);
    CHECK(name.rfind("ctxstream_", 0) == 0);
    CHECK(name.find(':') == std::string::npos);
  }
  CHECK(text.find("# TYPE ctxstream_store_hits_total counter") != std::string::npos);

  if (!ctx::testing::HaveTool("promtool")) {
    WARN("promtool not found (scripts/setup.sh installs package prometheus): skipped check");
    return;
  }
  const std::string path = std::string(CTX_BINARY_DIR) + "/tests/deploy/exposition.prom";
  {
    std::ofstream out(path);
    out << text;
  }
  const auto r =
      ctx::testing::RunCommand("promtool check metrics < " + ctx::testing::ShellQuote(path));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  // promtool prints lint problems (e.g. "counter metrics should have _total suffix") to its
  // output even when it exits 0 on some versions; there must be none.
  CHECK(r.output.find("ctxstream_") == std::string::npos);
}

TEST_CASE("docs/metrics.md catalogues every exported family", "[deploy][metrics]") {
  const std::string doc =
      ctx::testing::ReadFileOrThrow(std::string(CTX_SOURCE_DIR) + "/docs/metrics.md");
  const std::set<std::string> in_doc = ctx::testing::MetricIdentifiers(doc);
  for (const auto& name : ExportedFamilyNames()) {
    INFO(name << " is exported but missing from docs/metrics.md");
    CHECK(in_doc.count(name) == 1);
  }
  const std::set<std::string> samples = ctx::testing::ExportedSampleNames();
  for (const auto& name : in_doc) {
    INFO(name << " is in docs/metrics.md but not exported");
    CHECK(samples.count(name) == 1);
  }
}

TEST_CASE("every live service's /metrics passes promtool after a real call", "[deploy][metrics]") {
  const auto& scraped = ctx::testing::ScrapeLiveServices();
  REQUIRE(scraped.size() == 4);
  const bool have_promtool = ctx::testing::HaveTool("promtool");
  if (!have_promtool) WARN("promtool not found (scripts/setup.sh installs package prometheus)");
  for (const auto& [service, text] : scraped) {
    INFO(service);
    // The per-RPC metrics of the health call that ScrapeLiveServices made.
    CHECK(text.find("ctxstream_rpc_requests_total{") != std::string::npos);
    CHECK(text.find("method=\"Check\"") != std::string::npos);
    for (const auto& name : ctx::testing::SampleNamesOf(text)) {
      INFO(name);
      CHECK(name.find(':') == std::string::npos);
    }
    if (!have_promtool) continue;
    const std::string path =
        std::string(CTX_BINARY_DIR) + "/tests/deploy/live-" + service + ".prom";
    {
      std::ofstream out(path);
      out << text;
    }
    const auto r =
        ctx::testing::RunCommand("promtool check metrics < " + ctx::testing::ShellQuote(path));
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(r.output.find("ctxstream_") == std::string::npos);
  }
}
