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
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/codec/baselines.h"
#include "common/codec/codec.h"
#include "common/model/model.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/kvquality/kv_eval.h"
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

namespace {

using ctx::codec::KvChunkView;
namespace kveval = ctx::kveval;

double ThreadSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

[[noreturn]] void Die(const std::string& what);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "kvquality: %s\n", what.c_str());
  std::exit(1);
}

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
        r.payload_bits += 8.0 * static_cast<double>(st.stream_bytes + st.table_bytes);
        r.side_bits += 8.0 * static_cast<double>(st.header_bytes + st.scale_bytes);
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

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  auto model = ctx::model::Model::Load(model_dir);
  if (!model.ok()) Die(model.status().ToString());
  auto tok = ctx::tokenizer::Tokenizer::LoadFromModelDir(model_dir);
  if (!tok.ok()) Die(tok.status().ToString());
  ctx::codec::ModelFingerprint fp = (*model)->fingerprint().bytes;
  const ctx::model::LlamaConfig& cfg = (*model)->config();
  const ctx::codec::KvGeometry geo{cfg.num_layers, cfg.num_kv_heads, cfg.head_dim};

  absl::StatusOr<ctx::codec::KvCodec> codec = absl::UnknownError("");
  if (absl::GetFlag(FLAGS_codec_profile).empty()) {
    codec = ctx::codec::KvCodec::CreateDefault(fp, geo);
  } else {
    const std::string bytes = ReadFile(absl::GetFlag(FLAGS_codec_profile));
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

  const std::string dir = absl::GetFlag(FLAGS_docs_dir);
  nlohmann::json index = nlohmann::json::parse(ReadFile(dir + "/index.json"), nullptr, false);
  if (!index.is_array()) Die(dir + "/index.json is missing or not a JSON array");
  const int ctx_tokens = absl::GetFlag(FLAGS_context_tokens);
  const int scored = absl::GetFlag(FLAGS_scored_tokens);
  const int chunk_tokens = absl::GetFlag(FLAGS_chunk_tokens);
  std::vector<KvChunkView> bench_chunks;
  std::vector<kveval::Window> bench_windows;  // keep the KV the views point into
  int docs = 0;
  for (const auto& entry : index) {
    if (absl::GetFlag(FLAGS_max_docs) > 0 && docs >= absl::GetFlag(FLAGS_max_docs)) break;
    ++docs;
    const std::string text = ReadFile(dir + "/" + entry.at("file").get<std::string>());
    auto ids = (*tok)->Encode(text, /*add_bos=*/true);
    if (!ids.ok()) Die(ids.status().ToString());
    const int n = static_cast<int>(ids->size());
    if (!absl::GetFlag(FLAGS_dump_ids).empty()) {
      std::ofstream f(absl::GetFlag(FLAGS_dump_ids));
      for (int32_t id : *ids) f << id << "\n";
      return f ? 0 : 1;
    }
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
      win[0] = (*tok)->bos_id();
      auto window = kveval::Window::Prepare(**model, win, context, chunk_tokens, fp);
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
