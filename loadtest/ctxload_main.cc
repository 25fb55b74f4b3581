// ctxload: load generator for ctxstream's controller.
//
//   ctxload --controller=127.0.0.1:50050 --docs=loadtest/data/docs
//       --questions=loadtest/data/questions.txt [--contexts_file=var/ctxload.contexts]
//       (--rate=QPS | --concurrency=N) --queries=N --duration_seconds=S [--seed=1]
//       [--force_form=text|ctext|kv --force_level=L] [--slo=S] [--quality_floor=X]
//       [--records=out.jsonl] [--summary=out.json] [--label=TEXT] [--api_key=K]
//   ctxload --codec_info_from=127.0.0.1:50052 --codec_info_out=codec.json
//
// Registers every document (once: ids are kept in --contexts_file), then sends queries:
// open loop (Poisson arrivals at --rate, seeded) or closed loop (--concurrency clients).
// Writes one JSON record per query and a JSON summary; prints a progress line on stderr
// every second and a one-line result on stdout. Exit code 0 unless set-up failed (query
// errors are counted in the summary, not fatal).
#include <cstdio>
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/rpc/channel.h"
#include "loadtest/controller_client.h"
#include "loadtest/summary.h"
#include "loadtest/workload.h"

ABSL_FLAG(std::string, controller, "127.0.0.1:50050", "controller address");
ABSL_FLAG(std::string, api_key, "", "API key sent as x-api-key (empty: none)");
ABSL_FLAG(std::string, docs, "loadtest/data/docs", "folder of *.txt documents (one context each)");
ABSL_FLAG(std::string, questions, "loadtest/data/questions.txt", "questions, one per line");
ABSL_FLAG(std::string, contexts_file, "",
          "remember registered context ids here (ID<TAB>NAME); reused when present");
ABSL_FLAG(bool, register_only, false, "register the documents and exit");
ABSL_FLAG(bool, precompute_compressed, true, "ask the controller to precompute compressed text");
ABSL_FLAG(double, rate, 0, "open loop: Poisson arrivals at this many queries/s (0: closed loop)");
ABSL_FLAG(int, concurrency, 1, "closed loop: clients each with one query in flight");
ABSL_FLAG(uint64_t, queries, 20, "send at most this many queries (0: no count bound)");
ABSL_FLAG(double, duration_seconds, 60, "stop sending after this long (0: no time bound)");
ABSL_FLAG(uint64_t, seed, 1, "seed of the arrival process and of the context/question picks");
ABSL_FLAG(int, warmup_queries, 0, "sequential queries sent first and not recorded");
ABSL_FLAG(uint32_t, max_tokens, 8, "tokens to generate per query");
ABSL_FLAG(double, slo, 0, "TTFT SLO in seconds sent with each query (0: none)");
ABSL_FLAG(double, quality_floor, 0, "max_quality_loss sent with each query (0: none)");
ABSL_FLAG(std::string, force_form, "auto", "auto | text | ctext | kv");
ABSL_FLAG(int, force_level, -1, "with --force_form=kv: the KV level (-1: controller chooses)");
ABSL_FLAG(std::string, objective, "quality",
          "quality (best quality within the SLO) | fastest (fastest within the quality floor)");
ABSL_FLAG(double, deadline_seconds, 120, "deadline of each query");
ABSL_FLAG(std::string, records, "", "write one JSON record per query to this file");
ABSL_FLAG(std::string, summary, "", "write the JSON summary to this file");
ABSL_FLAG(std::string, label, "", "label copied into the summary");
ABSL_FLAG(double, timeline_bucket_seconds, 1, "bucket width of the summary's timeline");
ABSL_FLAG(bool, quiet, false, "no progress lines");
ABSL_FLAG(std::string, codec_info_from, "", "kvcache address: write its GetCodecInfo and exit");
ABSL_FLAG(std::string, codec_info_out, "", "with --codec_info_from: output file (default stdout)");

namespace {

namespace lt = ctx::loadtest;
namespace pb = ctxstream::v1;

int Fail(const std::string& what) {
  std::fprintf(stderr, "ctxload: %s\n", what.c_str());
  return 1;
}

int CodecInfo() {
  auto info = lt::FetchCodecInfo(absl::GetFlag(FLAGS_codec_info_from));
  if (!info.ok()) return Fail(info.status().ToString());
  const std::string out = absl::GetFlag(FLAGS_codec_info_out);
  if (out.empty()) {
    std::cout << info->dump(2) << "\n";
  } else {
    std::ofstream(out) << info->dump(2) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_codec_info_from).empty()) return CodecInfo();

  lt::QueryTemplate tmpl;
  tmpl.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  tmpl.slo_ttft_seconds = absl::GetFlag(FLAGS_slo);
  tmpl.max_quality_loss = absl::GetFlag(FLAGS_quality_floor);
  tmpl.force_level = absl::GetFlag(FLAGS_force_level);
  tmpl.deadline_seconds = absl::GetFlag(FLAGS_deadline_seconds);
  tmpl.api_key = absl::GetFlag(FLAGS_api_key);
  if (const std::string o = absl::GetFlag(FLAGS_objective); o == "fastest") {
    tmpl.objective = pb::OBJECTIVE_FASTEST_WITHIN_FLOOR;
  } else if (o != "quality") {
    return Fail("--objective must be quality or fastest, not '" + o + "'");
  }
  const std::string form = absl::GetFlag(FLAGS_force_form);
  if (form == "text") {
    tmpl.force_form = pb::FORM_TEXT;
  } else if (form == "ctext") {
    tmpl.force_form = pb::FORM_COMPRESSED_TEXT;
  } else if (form == "kv") {
    tmpl.force_form = pb::FORM_KV;
  } else if (form != "auto") {
    return Fail("--force_form must be auto, text, ctext or kv, not '" + form + "'");
  }

  auto channel = ctx::rpc::MakeChannel(absl::GetFlag(FLAGS_controller));
  if (!channel.ok()) return Fail(channel.status().ToString());
  lt::ControllerClient client(*channel, tmpl);

  // Contexts: reuse remembered ids, register the documents otherwise.
  const std::string contexts_file = absl::GetFlag(FLAGS_contexts_file);
  std::vector<lt::WorkloadContext> contexts;
  if (!contexts_file.empty()) {
    auto loaded = lt::LoadContextsFile(contexts_file);
    if (!loaded.ok()) return Fail(loaded.status().ToString());
    contexts = *loaded;
    // Remembered ids from another cluster (or a restarted controller without --state_dir)
    // are stale: register again.
    for (const auto& c : contexts) {
      auto exists = client.Exists(c.id);
      if (!exists.ok()) return Fail(exists.status().ToString());
      if (!*exists) {
        std::fprintf(stderr, "ctxload: %s (%s) unknown to the controller: registering again\n",
                     c.id.c_str(), c.name.c_str());
        contexts.clear();
        break;
      }
    }
  }
  if (contexts.empty()) {
    auto docs = lt::LoadDocuments(absl::GetFlag(FLAGS_docs));
    if (!docs.ok()) return Fail(docs.status().ToString());
    for (const auto& d : *docs) {
      auto reg = client.Register(d.text, d.name, absl::GetFlag(FLAGS_precompute_compressed), 600);
      if (!reg.ok()) return Fail(reg.status().ToString());
      std::fprintf(stderr, "ctxload: registered %s as %s (%u tokens, %u chunks, kv_ready=%d%s%s)\n",
                   d.name.c_str(), reg->context_id.c_str(), reg->tokens, reg->chunks,
                   reg->kv_ready ? 1 : 0, reg->kv_ready ? "" : ": ",
                   reg->kv_ready ? "" : reg->message.c_str());
      contexts.push_back({reg->context_id, d.name});
    }
    if (!contexts_file.empty()) {
      if (auto s = lt::SaveContextsFile(contexts_file, contexts); !s.ok()) {
        return Fail(s.ToString());
      }
    }
  }
  if (absl::GetFlag(FLAGS_register_only)) return 0;
  auto questions = lt::LoadQuestions(absl::GetFlag(FLAGS_questions));
  if (!questions.ok()) return Fail(questions.status().ToString());

  if (const int warm = absl::GetFlag(FLAGS_warmup_queries); warm > 0) {
    lt::LoadOptions w;
    w.mode = lt::LoadOptions::Mode::kClosed;
    w.concurrency = 1;
    w.max_queries = static_cast<uint64_t>(warm);
    w.seed = absl::GetFlag(FLAGS_seed) + 1000003;
    lt::RunLoad(client, contexts, *questions, w);
  }

  lt::LoadOptions opts;
  const double rate = absl::GetFlag(FLAGS_rate);
  opts.mode = rate > 0 ? lt::LoadOptions::Mode::kOpen : lt::LoadOptions::Mode::kClosed;
  opts.rate_qps = rate;
  opts.concurrency = absl::GetFlag(FLAGS_concurrency);
  opts.max_queries = absl::GetFlag(FLAGS_queries);
  opts.duration_seconds = absl::GetFlag(FLAGS_duration_seconds);
  opts.seed = absl::GetFlag(FLAGS_seed);
  if (opts.max_queries == 0 && opts.duration_seconds <= 0) {
    return Fail("set --queries or --duration_seconds: a run must be bounded");
  }
  if (!absl::GetFlag(FLAGS_quiet)) {
    opts.progress = [](const lt::Progress& p) {
      std::fprintf(stderr,
                   "ctxload: t=%6.1fs sent=%llu done=%llu ok=%llu in_flight=%llu "
                   "last_ttft=%.3fs\n",
                   p.elapsed_seconds, static_cast<unsigned long long>(p.sent),
                   static_cast<unsigned long long>(p.done), static_cast<unsigned long long>(p.ok),
                   static_cast<unsigned long long>(p.in_flight), p.last_ttft_seconds);
    };
  }
  lt::RunResult run = lt::RunLoad(client, contexts, *questions, opts);

  if (const std::string path = absl::GetFlag(FLAGS_records); !path.empty()) {
    std::ofstream out(path, std::ios::trunc);
    for (const auto& r : run.records) out << lt::ToJson(r).dump() << "\n";
    if (!out) return Fail("cannot write --records " + path);
  }
  lt::SummaryOptions so;
  so.slo_ttft_seconds = absl::GetFlag(FLAGS_slo);
  so.timeline_bucket_seconds = absl::GetFlag(FLAGS_timeline_bucket_seconds);
  so.duration_seconds = run.duration_seconds;
  so.offered_qps = rate;
  so.label = absl::GetFlag(FLAGS_label);
  const lt::Summary s = lt::Summarize(run.records, so);
  nlohmann::json j = lt::ToJson(s, so);
  j["mode"] = rate > 0 ? "open" : "closed";
  j["concurrency"] = opts.concurrency;
  j["max_in_flight"] = run.max_in_flight;
  j["force_form"] = form;
  j["force_level"] = tmpl.force_level;
  j["objective"] = absl::GetFlag(FLAGS_objective);
  if (const std::string path = absl::GetFlag(FLAGS_summary); !path.empty()) {
    std::ofstream out(path, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out) return Fail("cannot write --summary " + path);
  }
  std::string errors;
  for (const auto& [code, n] : s.errors_by_code) errors += " " + code + "=" + std::to_string(n);
  for (const auto& r : run.records) {
    if (!r.ok()) {
      errors += " (first: " + r.status_message + ")";
      break;
    }
  }
  std::printf(
      "ctxload %s: sent=%llu ok=%llu failed=%llu%s %.2f q/s ttft p50=%.3f p95=%.3f "
      "p99=%.3f mean=%.3f s slo_violations=%.2f\n",
      so.label.c_str(), static_cast<unsigned long long>(s.sent),
      static_cast<unsigned long long>(s.ok), static_cast<unsigned long long>(s.failed),
      errors.c_str(), s.throughput_qps, s.ttft_p50, s.ttft_p95, s.ttft_p99, s.ttft_mean,
      s.slo_violation_ratio);
  return 0;
}
