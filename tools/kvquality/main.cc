// kvquality: quality of the KV codec's levels on long documents (kv-anchors.md §3 protocol),
// and with --bench the codec's size/speed table on the same real KV.
//
//   ./build/bin/kvquality [--docs_dir tests/data/long_docs] [--windows_per_doc 1|3] [--json out]
//   ./build/bin/kvquality --bench
//
// Per document: ids = [BOS] + spm(text). Window 0 (the protocol): context = the first
// 1024 tokens (half the document if shorter), the next 256 tokens scored by teacher forcing.
// --windows_per_doc 3 adds windows at offsets 1280 and 2560 where the document is long enough
// (kv-anchors' 48-window noise check; such a window starts with BOS in place of its first id).
#include <time.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/codec/baselines.h"
#include "common/codec/codec.h"
#include "common/codec/level_table.h"
#include "common/model/model.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/kvquality/eval_setup.h"
#include "tools/kvquality/kv_eval.h"
#include "tools/kvquality/quant_methods.h"
#include "zstd.h"

ABSL_FLAG(std::string, model_dir, "models/tiny-llama", "model directory");
ABSL_FLAG(std::string, codec_profile, "models/tiny-llama/kvcodec.profile",
          "codec profile (empty: default levels, chunk-carried tables)");
ABSL_FLAG(std::string, docs_dir, "tests/data/long_docs", "long documents + index.json");
ABSL_FLAG(int, windows_per_doc, 1, "1 = the issue's protocol (20 windows), 3 = 48 windows");
ABSL_FLAG(int, max_docs, 0, "use only the first N documents (0 = all)");
ABSL_FLAG(int, context_tokens, 1024, "context tokens per window");
ABSL_FLAG(int, scored_tokens, 256, "continuation tokens scored per window");
ABSL_FLAG(int, chunk_tokens, 256, "tokens per codec chunk");
ABSL_FLAG(std::string, json, "", "also write the results as JSON to this file");
ABSL_FLAG(bool, bench, false, "also print the size/speed benchmark table");
ABSL_FLAG(std::string, dump_ids, "",
          "write the token ids of the first document (one a line) to this file and exit: test "
          "data for binaries that cannot link SentencePiece next to gRPC's protobuf");
ABSL_FLAG(int, bench_repeat, 3, "encode/decode repetitions per chunk in --bench");
ABSL_FLAG(int, greedy_tokens, 0,
          "also generate N greedy tokens per document after the context delivered as KV (window "
          "0's context, whole context as KV) and count positions equal to the exact-KV run");
ABSL_FLAG(bool, teacher_forced, true, "run the teacher-forced protocol (ΔPPL, KL, top-1)");
ABSL_FLAG(std::string, extra_levels, "",
          "ad-hoc levels to measure too, 'name=K0 K1 ..|V0 V1 ..;name2=...' (bins per layer, 0 = "
          "not sent, 'B+r' = B bins + r refinement bits); slots without a profile table code "
          "with chunk-carried tables");
ABSL_FLAG(std::string, methods, "",
          "quantizer variants outside the codec, 'method:level,...' with method tok | kch | dL "
          "(quant_methods.h) and level a profile level, --extra_levels level or CacheGen's "
          "CG-L0..CG-L4; sizes from static tables counted on --methods_windows calibration "
          "windows");
ABSL_FLAG(std::string, methods_text, "models/calibration/valid.txt",
          "calibration text for --methods tables (the long documents are excluded by doc id)");
ABSL_FLAG(std::string, methods_ids, "models/calibration/valid.ids.txt",
          "doc ids of --methods_text");
ABSL_FLAG(int, methods_windows, 16, "calibration windows (1024 tokens) for --methods tables");
ABSL_FLAG(std::string, variants, "",
          "comma-separated names (or name prefixes) of the variants to run; empty = all");

namespace {

using ctx::codec::KvChunkView;
namespace kveval = ctx::kveval;

double ThreadSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

using kveval::Die;

struct Variant {
  std::string name;
  kveval::DegradeFn degrade;  // nullptr = full precision
  kveval::Score score;
};

kveval::DegradeFn DecodeAfter(const ctx::codec::KvCodec* codec,
                              std::function<absl::StatusOr<std::string>(const KvChunkView&)> enc) {
  return [codec, enc](const KvChunkView& v) -> absl::StatusOr<kveval::Degraded> {
    absl::StatusOr<std::string> bytes = enc(v);
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<ctx::codec::DecodedChunk> d = codec->Decode(*bytes);
    if (!d.ok()) return d.status();
    return kveval::Degraded{std::move(d->kv), std::move(d->missing_slots), bytes->size()};
  };
}

// --bench: sizes split into payload / side information, one-thread speeds (thread CPU time),
// raw-fp16-equivalent MB/s (2 bytes per element).
void Bench(const ctx::codec::KvCodec& codec, const std::vector<KvChunkView>& chunks, int repeat,
           const std::vector<Variant>& quality) {
  struct Row {
    std::string name;
    double payload_bits = 0, side_bits = 0, elements = 0, enc_s = 0, dec_s = 0;
  };
  std::vector<Row> rows;
  const int L = static_cast<int>(codec.profile().levels.size());
  auto measure = [&](const std::string& name, int kind) {
    Row r;
    r.name = name;
    for (const KvChunkView& v : chunks) {
      ctx::codec::EncodeStats st;
      std::string bytes;
      const double t0 = ThreadSeconds();
      for (int k = 0; k < repeat; ++k) {
        absl::StatusOr<std::string> b = kind >= 0    ? codec.Encode(v, kind, {}, &st)
                                        : kind == -1 ? ctx::codec::EncodeRawF16(v)
                                                     : ctx::codec::EncodeInt8(v);
        if (!b.ok()) Die(b.status().ToString());
        bytes = *std::move(b);
        if (kind == -3) {  // zstd -19 over the int8 container
          std::string z(ZSTD_compressBound(bytes.size()), '\0');
          z.resize(ZSTD_compress(z.data(), z.size(), bytes.data(), bytes.size(), 19));
          bytes = std::move(z);
        }
      }
      r.enc_s += (ThreadSeconds() - t0) / repeat;
      std::vector<float> out(v.NumElements());
      const double t1 = ThreadSeconds();
      for (int k = 0; k < repeat; ++k) {
        std::string plain;
        absl::string_view in = bytes;
        if (kind == -3) {
          plain.resize(ZSTD_getFrameContentSize(bytes.data(), bytes.size()));
          ZSTD_decompress(plain.data(), plain.size(), bytes.data(), bytes.size());
          in = plain;
        }
        if (absl::Status s = codec.DecodeInto(in, {}, out); !s.ok()) Die(s.ToString());
      }
      r.dec_s += (ThreadSeconds() - t1) / repeat;
      r.elements += static_cast<double>(v.NumElements());
      if (kind >= 0) {
        r.payload_bits +=
            8.0 * static_cast<double>(st.stream_bytes + st.table_bytes + st.refine_bytes);
        r.side_bits +=
            8.0 * static_cast<double>(st.header_bytes + st.scale_bytes + st.repeat_bytes);
      } else {
        // Baselines: scales (int8: one fp16 per row of C) and the 96-byte header are side info.
        const double rows_ = static_cast<double>(v.geometry.slots()) * v.token_count;
        const double side = 8.0 * 96 + (kind == -1 ? 0 : 16.0 * rows_);
        r.side_bits += kind == -3 ? 0 : side;
        r.payload_bits += 8.0 * static_cast<double>(bytes.size()) - (kind == -3 ? 0 : side);
      }
    }
    rows.push_back(r);
  };
  measure("raw fp16", -1);
  measure("int8", -2);
  measure("int8 + zstd -19", -3);
  for (int l = 0; l < L; ++l) measure(absl::StrCat("L", l, " ", codec.profile().levels[l].name), l);

  std::map<std::string, const kveval::Score*> q;
  const kveval::Score* full = nullptr;
  for (const Variant& v : quality) {
    q[v.name] = &v.score;
    if (!v.degrade) full = &v.score;
  }
  std::printf("\n%-18s %9s %9s %9s %10s %10s %9s %7s\n", "encoding", "bits/el", "payload", "side",
              "enc MB/s", "dec MB/s", "ΔPPL %", "top-1");
  for (const Row& r : rows) {
    const double mb = 2.0 * r.elements / 1e6;
    std::string key = r.name == "int8 + zstd -19" ? "int8" : r.name;
    const kveval::Score* s = q.count(key) ? q[key] : nullptr;
    std::printf("%-18s %9.3f %9.3f %9.3f %10.0f %10.0f %+9.2f %7.4f\n", r.name.c_str(),
                (r.payload_bits + r.side_bits) / r.elements, r.payload_bits / r.elements,
                r.side_bits / r.elements, mb / r.enc_s, mb / r.dec_s,
                s && full ? 100 * (s->MeanWindowPpl() / full->MeanWindowPpl() - 1) : NAN,
                s ? s->Top1() : NAN);
  }
}

// "K0 K1 ..|V0 V1 .." (a bins entry may be "B+r": r refinement bits) -> LevelSpec.
ctx::codec::LevelSpec ParseBins(const std::string& name, const std::string& text, int layers) {
  absl::StatusOr<ctx::codec::LevelSpec> spec = ctx::codec::ParseLevelBins(name, text, layers);
  if (!spec.ok()) Die(spec.status().ToString());
  return *std::move(spec);
}

bool Selected(const std::string& name) {
  const std::string list = absl::GetFlag(FLAGS_variants);
  if (list.empty() || name == "full") return true;
  std::istringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty() && name.compare(0, item.size(), item) == 0) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  kveval::EvalModel setup = kveval::LoadEvalModelOrDie(absl::GetFlag(FLAGS_model_dir));
  const std::unique_ptr<ctx::model::Model>& model = setup.model;
  const std::unique_ptr<ctx::tokenizer::Tokenizer>& tok = setup.tokenizer;
  const ctx::codec::ModelFingerprint fp = setup.fingerprint;
  const ctx::codec::KvGeometry geo = setup.geometry;

  absl::StatusOr<ctx::codec::KvCodec> codec = absl::UnknownError("");
  if (absl::GetFlag(FLAGS_codec_profile).empty()) {
    codec = ctx::codec::KvCodec::CreateDefault(fp, geo);
  } else {
    const std::string bytes = kveval::ReadFileOrDie(absl::GetFlag(FLAGS_codec_profile));
    auto profile = ctx::codec::ParseProfile(bytes);
    if (!profile.ok())
      Die(absl::StrCat(absl::GetFlag(FLAGS_codec_profile), ": ", profile.status().ToString()));
    codec = ctx::codec::KvCodec::Create(*std::move(profile));
  }
  if (!codec.ok()) Die(codec.status().ToString());
  if (codec->profile().fingerprint != fp) Die("the codec profile is for another model");

  std::vector<Variant> variants;
  variants.push_back({"full", nullptr, {}});
  const ctx::codec::KvCodec* c = &*codec;
  variants.push_back(
      {"raw fp16",
       DecodeAfter(c, [](const KvChunkView& v) { return ctx::codec::EncodeRawF16(v); }),
       {}});
  variants.push_back(
      {"int8", DecodeAfter(c, [](const KvChunkView& v) { return ctx::codec::EncodeInt8(v); }), {}});
  for (size_t l = 0; l < c->profile().levels.size(); ++l) {
    const int level = static_cast<int>(l);
    variants.push_back(
        {absl::StrCat("L", l, " ", c->profile().levels[l].name),
         DecodeAfter(c, [c, level](const KvChunkView& v) { return c->Encode(v, level); }),
         {}});
  }

  const std::vector<std::string> extra =
      absl::StrSplit(absl::GetFlag(FLAGS_extra_levels), ';', absl::SkipWhitespace());
  for (const std::string& item : extra) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) Die("--extra_levels item '" + item + "' has no '='");
    const ctx::codec::LevelSpec spec =
        ParseBins(item.substr(0, eq), item.substr(eq + 1), geo.layers);
    variants.push_back(
        {spec.name,
         DecodeAfter(c, [c, spec](const KvChunkView& v) { return c->EncodeWithBins(v, spec); }),
         {}});
  }
  std::vector<std::unique_ptr<kveval::MethodQuantizer>> methods;
  const std::vector<std::string> method_items =
      absl::StrSplit(absl::GetFlag(FLAGS_methods), ',', absl::SkipWhitespace());
  if (!method_items.empty()) {
    std::map<std::string, ctx::codec::LevelSpec> named;
    for (const ctx::codec::LevelSpec& l : c->profile().levels) named[l.name] = l;
    for (const ctx::codec::LevelSpec& l : kveval::CacheGenLevels()) named[l.name] = l;
    for (const std::string& item : extra) {
      const size_t eq = item.find('=');
      named[item.substr(0, eq)] = ParseBins(item.substr(0, eq), item.substr(eq + 1), geo.layers);
    }
    for (const std::string& item : method_items) {
      const size_t colon = item.find(':');
      if (colon == std::string::npos) Die("--methods item '" + item + "' is not method:level");
      auto m = kveval::ParseQuantMethod(item.substr(0, colon));
      if (!m.ok()) Die(m.status().ToString());
      const std::string level = item.substr(colon + 1);
      if (!named.count(level)) Die("--methods: unknown level '" + level + "'");
      methods.push_back(std::make_unique<kveval::MethodQuantizer>(*m, named[level], geo));
      const kveval::MethodQuantizer* q = methods.back().get();
      variants.push_back({item.substr(0, colon) + "-" + level,
                          [q](const KvChunkView& v) { return q->Degrade(v); },
                          {}});
    }
    // Static tables from calibration windows (not the long documents).
    std::set<std::string> excluded;
    nlohmann::json idx = nlohmann::json::parse(
        kveval::ReadFileOrDie(absl::GetFlag(FLAGS_docs_dir) + "/index.json"), nullptr, false);
    if (idx.is_array()) {
      for (const auto& e : idx) excluded.insert(e.value("doc_id", ""));
    }
    const std::vector<std::string> cal_docs =
        kveval::SplitDocuments(kveval::ReadFileOrDie(absl::GetFlag(FLAGS_methods_text)));
    const std::vector<std::string> cal_ids =
        absl::StrSplit(kveval::ReadFileOrDie(absl::GetFlag(FLAGS_methods_ids)), '\n');
    int used = 0;
    for (size_t i = 0; i < cal_docs.size() && used < absl::GetFlag(FLAGS_methods_windows); ++i) {
      if (i < cal_ids.size() && excluded.count(cal_ids[i])) continue;
      auto t = tok->Encode(cal_docs[i], /*add_bos=*/true);
      if (!t.ok()) Die(t.status().ToString());
      if (t->size() < 1024) continue;
      ++used;
      ctx::model::KvCache cache = model->NewKvCache(1024);
      if (auto st = model->Forward(std::span<const int32_t>(t->data(), 1024), cache,
                                   ctx::model::Logits::kNone, nullptr);
          !st.ok()) {
        Die(st.ToString());
      }
      for (int a = 0; a < 1024; a += 256) {
        const std::vector<float> kv = kveval::ChunkFromCache(cache, geo, a, a + 256);
        const KvChunkView v{geo, static_cast<uint64_t>(a),
                            256, fp,
                            kv,  std::span<const int32_t>(*t).subspan(a, 256)};
        for (auto& q : methods) {
          if (auto st = q->AddToTables(v); !st.ok()) Die(st.ToString());
        }
      }
    }
    std::fprintf(stderr, "--methods tables from %d calibration windows\n", used);
  }
  std::erase_if(variants, [](const Variant& v) { return !Selected(v.name); });

  const std::string dir = absl::GetFlag(FLAGS_docs_dir);
  nlohmann::json index =
      nlohmann::json::parse(kveval::ReadFileOrDie(dir + "/index.json"), nullptr, false);
  if (!index.is_array()) Die(dir + "/index.json is missing or not a JSON array");
  const int ctx_tokens = absl::GetFlag(FLAGS_context_tokens);
  const int scored = absl::GetFlag(FLAGS_scored_tokens);
  const int chunk_tokens = absl::GetFlag(FLAGS_chunk_tokens);
  std::vector<KvChunkView> bench_chunks;
  std::vector<kveval::Window> bench_windows;  // keep the KV the views point into
  int docs = 0;
  std::vector<kveval::Agreement> greedy(variants.size());
  std::vector<int> greedy_docs_equal(variants.size(), 0);
  std::vector<kveval::Agreement> resynced(variants.size());
  for (const auto& entry : index) {
    if (absl::GetFlag(FLAGS_max_docs) > 0 && docs >= absl::GetFlag(FLAGS_max_docs)) break;
    ++docs;
    const std::string text = kveval::ReadFileOrDie(dir + "/" + entry.at("file").get<std::string>());
    auto ids = tok->Encode(text, /*add_bos=*/true);
    if (!ids.ok()) Die(ids.status().ToString());
    const int n = static_cast<int>(ids->size());
    if (!absl::GetFlag(FLAGS_dump_ids).empty()) {
      std::ofstream f(absl::GetFlag(FLAGS_dump_ids));
      for (int32_t id : *ids) f << id << "\n";
      return f ? 0 : 1;
    }
    if (const int g = absl::GetFlag(FLAGS_greedy_tokens); g > 0) {
      const int context = std::min(ctx_tokens, n / 2);
      auto gw = kveval::GreedyWindow::Prepare(
          *model, std::span<const int32_t>(ids->data(), context), chunk_tokens, fp);
      if (!gw.ok()) Die(gw.status().ToString());
      auto ref = gw->Generate(nullptr, g);
      if (!ref.ok()) Die(ref.status().ToString());
      std::string line;
      for (size_t k = 0; k < variants.size(); ++k) {
        if (!variants[k].degrade) continue;
        auto toks = gw->Generate(variants[k].degrade, g);
        if (!toks.ok()) Die(absl::StrCat(variants[k].name, ": ", toks.status().ToString()));
        const kveval::Agreement a = kveval::CompareTokens(*ref, *toks);
        greedy[k].equal += a.equal;
        greedy[k].total += a.total;
        greedy_docs_equal[k] += a.first_divergence < 0;
        auto re = gw->Resynced(variants[k].degrade, *ref);
        if (!re.ok()) Die(absl::StrCat(variants[k].name, ": ", re.status().ToString()));
        const kveval::Agreement r = kveval::CompareTokens(*ref, *re);
        resynced[k].equal += r.equal;
        resynced[k].total += r.total;
        absl::StrAppend(&line, " ", variants[k].name, ":", a.first_divergence, "/",
                        r.total - r.equal);
      }
      std::fprintf(stderr,
                   "doc %d greedy %d+%d, per variant first divergence / resynced misses:%s\n",
                   docs - 1, context, g, line.c_str());
    }
    if (!absl::GetFlag(FLAGS_teacher_forced)) continue;
    for (int w = 0; w < absl::GetFlag(FLAGS_windows_per_doc); ++w) {
      const int offset = w * (ctx_tokens + scored);
      int context = ctx_tokens, score = scored;
      if (w == 0) {
        context = std::min(ctx_tokens, n / 2);
        score = std::min(scored, n - context);
      } else if (offset + ctx_tokens + scored > n) {
        break;
      }
      std::vector<int32_t> win(ids->begin() + offset, ids->begin() + offset + context + score);
      win[0] = tok->bos_id();
      auto window = kveval::Window::Prepare(*model, win, context, chunk_tokens, fp);
      if (!window.ok()) Die(window.status().ToString());
      for (Variant& v : variants) {
        auto s = window->Evaluate(v.degrade);
        if (!s.ok()) Die(absl::StrCat(v.name, ": ", s.status().ToString()));
        v.score.Add(*s);
      }
      std::fprintf(stderr, "doc %d window %d: %d+%d tokens, full PPL %.3f\n", docs - 1, w, context,
                   score, window->reference().PooledPpl());
      if (absl::GetFlag(FLAGS_bench) && w == 0) bench_windows.push_back(*std::move(window));
    }
  }
  if (absl::GetFlag(FLAGS_greedy_tokens) > 0) {
    std::printf(
        "greedy agreement with the exact-KV run, %d docs x %d tokens: free-running (positions "
        "equal), docs identical, resynced (the KV path's choice given the exact run's prefix)\n",
        docs, absl::GetFlag(FLAGS_greedy_tokens));
    for (size_t k = 0; k < variants.size(); ++k) {
      if (!variants[k].degrade) continue;
      auto frac = [](const kveval::Agreement& a) {
        return a.total ? static_cast<double>(a.equal) / static_cast<double>(a.total) : 0.0;
      };
      std::printf(
          "  %-16s free %5lld/%-5lld = %.4f  identical %2d/%-2d  resynced %5lld/%-5lld = %.4f\n",
          variants[k].name.c_str(), static_cast<long long>(greedy[k].equal),
          static_cast<long long>(greedy[k].total), frac(greedy[k]), greedy_docs_equal[k], docs,
          static_cast<long long>(resynced[k].equal), static_cast<long long>(resynced[k].total),
          frac(resynced[k]));
    }
    std::printf("\n");
  }
  if (!absl::GetFlag(FLAGS_teacher_forced)) return 0;
  const kveval::Score& full = variants[0].score;
  std::printf(
      "%d docs, %lld windows, %lld scored tokens; full KV: mean window PPL %.3f, pooled "
      "PPL %.3f\n\n",
      docs, static_cast<long long>(full.windows), static_cast<long long>(full.tokens),
      full.MeanWindowPpl(), full.PooledPpl());
  std::printf("%-14s %9s %12s %12s %10s %8s\n", "variant", "bits/el", "ΔPPL % mean", "ΔPPL % pool",
              "KL nats", "top-1");
  nlohmann::json out = nlohmann::json::array();
  for (const Variant& v : variants) {
    const double d_mean = 100 * (v.score.MeanWindowPpl() / full.MeanWindowPpl() - 1);
    const double d_pool = 100 * (v.score.PooledPpl() / full.PooledPpl() - 1);
    const double bits = v.degrade ? v.score.BitsPerElement() : 32.0;
    std::printf("%-14s %9.3f %+12.2f %+12.2f %10.5f %8.4f\n", v.name.c_str(), bits, d_mean, d_pool,
                v.score.MeanKl(), v.score.Top1());
    out.push_back({{"variant", v.name},
                   {"bits_per_element", bits},
                   {"delta_ppl_pct_mean", d_mean},
                   {"delta_ppl_pct_pooled", d_pool},
                   {"kl_nats", v.score.MeanKl()},
                   {"top1", v.score.Top1()},
                   {"windows", v.score.windows},
                   {"tokens", v.score.tokens}});
  }
  if (!absl::GetFlag(FLAGS_json).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_json)) << out.dump(1) << "\n";
  }
  if (absl::GetFlag(FLAGS_bench)) {
    for (const kveval::Window& w : bench_windows) {
      for (const KvChunkView& v : w.ChunkViews()) bench_chunks.push_back(v);
    }
    Bench(*codec, bench_chunks, absl::GetFlag(FLAGS_bench_repeat), variants);
  }
  return 0;
}
