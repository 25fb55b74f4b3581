// calibrate: builds the codec profile of a model from calibration text and measures every
// level's size and quality on held-out calibration windows.
//
//   ./build/bin/calibrate [--model_dir models/tiny-llama] [--text models/calibration/valid.txt]
//       [--out models/tiny-llama/kvcodec.profile] [--profile_windows 24] [--eval_windows 8]
//       [--search]
//
// Data: the corpus' validation split (documents separated by "\f\n", ids in --ids), minus the
// long documents listed in --exclude (they are kvquality's test set). Every 2nd remaining
// document with >= 1280 tokens is held out for measurement (its first 1280 tokens); the others
// give the profile's symbol statistics (their first --window_tokens tokens each).
//
// Levels: the codec's DefaultLevels (kv-anchors.md's Lagrangian tables OA..OE), or with
// --search a Lagrangian rate-distortion search on this model: per (K/V, layer) slot and bins
// b, the KL of quantizing that slot alone (search windows, a disjoint part of the held-out
// set) and its bits (profile tables, measured on the search windows); single-slot KLs add up
// on this model (kv-anchors §3b), so each λ picks per slot argmin_b bits + λ·KL, and the
// levels are the λ whose predicted KL is closest to the targets.
//
// --level0 replaces level 0 by a near-lossless table (the shipped profile: NL64r5, 64 bins + 5
// refinement bits in every slot, for greedy agreement with the text path); --levels gives the
// list explicitly. Bins entries may be "B+r" (r refinement bits, wire format v3).
//
// Per level the profile records bits/element all-in (measured by encoding the held-out
// windows' chunks), KL (nats/token), ΔPPL % (mean of window PPL) and top-1 agreement.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/codec/codec.h"
#include "common/codec/level_table.h"
#include "common/codec/profile.h"
#include "common/model/model.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/kvquality/eval_setup.h"
#include "tools/kvquality/kv_eval.h"

ABSL_FLAG(std::string, model_dir, "models/tiny-llama", "model directory");
ABSL_FLAG(std::string, text, "models/calibration/valid.txt",
          "calibration corpus (\\f\\n-separated)");
ABSL_FLAG(std::string, ids, "models/calibration/valid.ids.txt",
          "document ids of --text, one a line");
ABSL_FLAG(std::string, exclude, "tests/data/long_docs/index.json",
          "JSON list of {doc_id} to leave out (the quality test documents)");
ABSL_FLAG(std::string, out, "models/tiny-llama/kvcodec.profile", "profile file to write");
ABSL_FLAG(int, profile_windows, 24, "documents whose KV builds the tables");
ABSL_FLAG(int, window_tokens, 1024, "tokens per profile window");
ABSL_FLAG(int, eval_windows, 8, "held-out windows (1024 + 256 tokens) measuring each level");
ABSL_FLAG(int, chunk_tokens, 256, "tokens per chunk");
ABSL_FLAG(bool, search, false, "Lagrangian search of per-slot bins instead of DefaultLevels");
ABSL_FLAG(int, search_windows, 4, "held-out windows (disjoint from eval) for --search");
ABSL_FLAG(std::string, search_bins, "4,6,8,10,12,16,20,24,32,48,64",
          "bins each (K/V, layer) slot may take in --search");
ABSL_FLAG(std::string, levels, "",
          "explicit level list 'name=K0 ..|V0 ..;name=...' (best quality first) instead of "
          "DefaultLevels; --default_level picks the default");
ABSL_FLAG(int, default_level, -1,
          "default level index with --levels (-1: the smallest level "
          "measured at KL <= 0.01 and ΔPPL <= 1 %)");
ABSL_FLAG(int, max_table_bins, 64,
          "ship static tables only for bins <= this (a 128-bin table is 32 KB; slots above it "
          "code with tables carried in the chunk)");
ABSL_FLAG(int, max_repeat_bins, 64,
          "ship repeat-context tables only for bins <= this (A tables of A symbols each: at 64 "
          "bins they are 252 KB of decode tables per slot, and decode of such a slot ~2x slower "
          "on cold caches; slots above code order-0)");
ABSL_FLAG(std::string, level0, "",
          "near-lossless level 0 as 'name=K0 K1 ..|V0 V1 ..' (bins per layer; up to 256), "
          "replacing level 0 of DefaultLevels or of the search");

namespace {

namespace codec = ctx::codec;
namespace kveval = ctx::kveval;

using kveval::Die;

// Encodes with ad-hoc bins and decodes; the size counted excludes the chunk header (so that
// single-slot sizes add up to a level's size minus one header).
kveval::DegradeFn Through(const codec::KvCodec* c, codec::LevelSpec bins) {
  return [c, bins](const codec::KvChunkView& v) -> absl::StatusOr<kveval::Degraded> {
    codec::EncodeStats stats;
    absl::StatusOr<std::string> bytes = c->EncodeWithBins(v, bins, {}, &stats);
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<codec::DecodedChunk> d = c->Decode(*bytes);
    if (!d.ok()) return d.status();
    return kveval::Degraded{std::move(d->kv), std::move(d->missing_slots),
                            bytes->size() - stats.header_bytes};
  };
}

kveval::Score Measure(const std::vector<kveval::Window>& windows, const kveval::DegradeFn& f) {
  kveval::Score total;
  for (const kveval::Window& w : windows) {
    absl::StatusOr<kveval::Score> s = w.Evaluate(f);
    if (!s.ok()) Die(s.status().ToString());
    total.Add(*s);
  }
  return total;
}

// "name=K0 K1 ..|V0 V1 .." (a bins entry may be "B+r": r refinement bits) -> LevelSpec.
codec::LevelSpec ParseLevel(const std::string& text, int layers) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) Die("level '" + text + "' is not 'name=K bins|V bins'");
  absl::StatusOr<codec::LevelSpec> spec =
      codec::ParseLevelBins(text.substr(0, eq), text.substr(eq + 1), layers);
  if (!spec.ok()) Die(spec.status().ToString());
  return *std::move(spec);
}

codec::LevelSpec Uniform(int layers, int bins, const std::string& name) {
  codec::LevelSpec l;
  l.name = name;
  l.key_bins.assign(layers, static_cast<uint16_t>(bins));
  l.value_bins.assign(layers, static_cast<uint16_t>(bins));
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  kveval::EvalModel setup = kveval::LoadEvalModelOrDie(absl::GetFlag(FLAGS_model_dir));
  const std::unique_ptr<ctx::model::Model>& model = setup.model;
  const std::unique_ptr<ctx::tokenizer::Tokenizer>& tok = setup.tokenizer;
  const codec::ModelFingerprint fp = setup.fingerprint;
  const codec::KvGeometry geo = setup.geometry;
  const int chunk = absl::GetFlag(FLAGS_chunk_tokens);

  // Documents minus the quality set.
  const std::vector<std::string> docs =
      kveval::SplitDocuments(kveval::ReadFileOrDie(absl::GetFlag(FLAGS_text)));
  std::vector<std::string> ids =
      absl::StrSplit(kveval::ReadFileOrDie(absl::GetFlag(FLAGS_ids)), '\n');
  std::set<std::string> excluded;
  if (!absl::GetFlag(FLAGS_exclude).empty()) {
    auto j =
        nlohmann::json::parse(kveval::ReadFileOrDie(absl::GetFlag(FLAGS_exclude)), nullptr, false);
    if (!j.is_array()) Die(absl::GetFlag(FLAGS_exclude) + " is not a JSON array");
    for (const auto& e : j) excluded.insert(e.at("doc_id").get<std::string>());
  }
  std::vector<std::vector<int32_t>> profile_docs, heldout_docs;
  int skipped = 0, long_docs = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (i < ids.size() && excluded.count(ids[i])) {
      ++skipped;
      continue;
    }
    auto t = tok->Encode(docs[i], /*add_bos=*/true);
    if (!t.ok()) Die(t.status().ToString());
    if (static_cast<int>(t->size()) < 2 * chunk) continue;
    if (t->size() >= 1280 && long_docs++ % 2 == 1) {
      heldout_docs.push_back(*std::move(t));
    } else {
      profile_docs.push_back(*std::move(t));
    }
  }
  std::fprintf(stderr, "%zu documents: %d excluded (quality set), %zu for tables, %zu held out\n",
               docs.size(), skipped, profile_docs.size(), heldout_docs.size());

  // Held-out windows: first eval_windows for measurement, then search_windows for --search.
  std::vector<kveval::Window> eval, search;
  const int n_eval = absl::GetFlag(FLAGS_eval_windows);
  const int n_search = absl::GetFlag(FLAGS_search) ? absl::GetFlag(FLAGS_search_windows) : 0;
  for (const std::vector<int32_t>& d : heldout_docs) {
    if (static_cast<int>(eval.size() + search.size()) >= n_eval + n_search) break;
    auto w =
        kveval::Window::Prepare(*model, std::span<const int32_t>(d.data(), 1280), 1024, chunk, fp);
    if (!w.ok()) Die(w.status().ToString());
    (static_cast<int>(eval.size()) < n_eval ? eval : search).push_back(*std::move(w));
  }
  if (static_cast<int>(eval.size()) < n_eval) {
    std::fprintf(stderr, "warning: only %zu eval windows\n", eval.size());
  }

  // Symbol statistics for every (slot, bins) the candidate levels may use.
  std::vector<int> kBinChoices;
  for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_search_bins), ',')) {
    kBinChoices.push_back(std::atoi(std::string(b).c_str()));
  }
  std::optional<codec::LevelSpec> level0;
  if (!absl::GetFlag(FLAGS_level0).empty()) {
    level0 = ParseLevel(absl::GetFlag(FLAGS_level0), geo.layers);
  }
  std::vector<codec::LevelSpec> explicit_levels;
  for (absl::string_view item :
       absl::StrSplit(absl::GetFlag(FLAGS_levels), ';', absl::SkipWhitespace())) {
    explicit_levels.push_back(ParseLevel(std::string(item), geo.layers));
  }
  std::vector<codec::LevelSpec> stat_levels =
      explicit_levels.empty() ? codec::DefaultLevels(geo.layers) : explicit_levels;
  if (level0) stat_levels.push_back(*level0);
  if (absl::GetFlag(FLAGS_search)) {
    for (int b : kBinChoices) stat_levels.push_back(Uniform(geo.layers, b, absl::StrCat("U", b)));
  }
  codec::ProfileBuilder builder(fp, geo, stat_levels, codec::DefaultLevelIndex());
  int used = 0;
  for (const std::vector<int32_t>& d : profile_docs) {
    if (used >= absl::GetFlag(FLAGS_profile_windows)) break;
    ++used;
    const int n = std::min<int>(static_cast<int>(d.size()), absl::GetFlag(FLAGS_window_tokens));
    ctx::model::KvCache cache = model->NewKvCache(n);
    if (auto s = model->Forward(std::span<const int32_t>(d.data(), n), cache,
                                ctx::model::Logits::kNone, nullptr);
        !s.ok()) {
      Die(s.ToString());
    }
    for (int a = 0; a + chunk <= n; a += chunk) {
      std::vector<float> kv = kveval::ChunkFromCache(cache, geo, a, a + chunk);
      codec::KvChunkView v{geo,
                           static_cast<uint64_t>(a),
                           static_cast<uint32_t>(chunk),
                           fp,
                           kv,
                           std::span<const int32_t>(d).subspan(a, chunk)};
      if (auto s = builder.AddChunk(v); !s.ok()) Die(s.ToString());
    }
  }
  std::fprintf(stderr, "tables from %d windows, %llu tokens\n", used,
               static_cast<unsigned long long>(builder.tokens()));
  codec::CodecProfile stats_profile = builder.Build();
  auto stats_codec = codec::KvCodec::Create(stats_profile);
  if (!stats_codec.ok()) Die(stats_codec.status().ToString());

  std::vector<codec::LevelSpec> levels = codec::DefaultLevels(geo.layers);
  int default_level = codec::DefaultLevelIndex();
  if (!explicit_levels.empty()) {
    levels = explicit_levels;
    default_level = absl::GetFlag(FLAGS_default_level);
  }
  if (absl::GetFlag(FLAGS_search)) {
    if (search.empty()) Die("--search needs held-out search windows");
    // Single-slot KL and bits on the search windows.
    const int S = geo.slots();
    codec::LevelSpec none = Uniform(geo.layers, 0, "none");
    const double elements = Measure(search, nullptr).elements;  // cheap enough: 4 windows
    // Header + section directory per chunk, counted once per level.
    double header_bytes = 0;
    for (const kveval::Window& w : search) {
      for (const codec::KvChunkView& v : w.ChunkViews()) {
        codec::EncodeStats st;
        if (!stats_codec->EncodeWithBins(v, Uniform(geo.layers, 32, "U32"), {}, &st).ok()) {
          Die("encode failed");
        }
        header_bytes += static_cast<double>(st.header_bytes);
      }
    }
    std::vector<std::vector<double>> kl(S), bits(S);
    for (int s = 0; s < S; ++s) {
      for (int b : kBinChoices) {
        codec::LevelSpec one = none;
        (s & 1 ? one.value_bins : one.key_bins)[s / 2] = static_cast<uint16_t>(b);
        kveval::Score sc = Measure(search, Through(&*stats_codec, one));
        kl[s].push_back(sc.MeanKl());
        bits[s].push_back(sc.bits / elements);
        std::fprintf(stderr, "slot %c%d bins %2d: %.3f bits/el, KL %.5f\n", s & 1 ? 'V' : 'K',
                     s / 2, b, bits[s].back(), kl[s].back());
      }
    }
    const double side = 8 * header_bytes / elements;
    // Sweep λ; layer 0 may be dropped (bins 0: recomputed by the receiver, KL 0, bits 0).
    struct Candidate {
      codec::LevelSpec spec;
      double bits, kl;
    };
    std::vector<Candidate> sweep;
    for (double lambda = 1; lambda <= 1e6; lambda *= 1.25) {
      for (int drop0 = 0; drop0 < 2; ++drop0) {
        Candidate c{none, side, 0};
        for (int s = 0; s < S; ++s) {
          if (drop0 && s / 2 == 0) continue;
          size_t best = 0;
          for (size_t k = 1; k < kBinChoices.size(); ++k) {
            if (bits[s][k] + lambda * kl[s][k] < bits[s][best] + lambda * kl[s][best]) best = k;
          }
          (s & 1 ? c.spec.value_bins : c.spec.key_bins)[s / 2] =
              static_cast<uint16_t>(kBinChoices[best]);
          c.bits += bits[s][best];
          c.kl += kl[s][best];
        }
        c.spec.name = absl::StrCat(drop0 ? "S-r0-" : "S-", static_cast<int>(lambda));
        sweep.push_back(c);
      }
    }
    // Levels: the smallest predicted size per KL target, layer 0 sent for the first one.
    const std::vector<double> targets = {0.0025, 0.004, 0.006, 0.008, 0.010, 0.018};
    levels.clear();
    for (size_t t = 0; t < targets.size(); ++t) {
      const Candidate* best = nullptr;
      for (const Candidate& c : sweep) {
        if (t == 0 && c.spec.key_bins[0] == 0) continue;
        if (c.kl <= targets[t] && (!best || c.bits < best->bits)) best = &c;
      }
      if (!best && t == 0) {  // near-lossless anchor: the lowest-KL table sending layer 0
        for (const Candidate& c : sweep) {
          if (c.spec.key_bins[0] != 0 && (!best || c.kl < best->kl)) best = &c;
        }
      }
      if (!best) continue;
      codec::LevelSpec spec = best->spec;
      spec.name = absl::StrCat("S", t, best->spec.key_bins[0] == 0 ? "-r0" : "");
      std::fprintf(stderr, "level %s: predicted %.3f bits/el, KL %.5f\n", spec.name.c_str(),
                   best->bits, best->kl);
      levels.push_back(spec);
    }
    default_level = -1;
  }

  if (level0) levels[0] = *level0;
  // Final profile: the chosen levels and only the tables they use.
  codec::CodecProfile profile = stats_profile;
  profile.levels = levels;
  profile.tables.clear();
  for (const codec::SlotTable& t : stats_profile.tables) {
    if (t.bins > absl::GetFlag(FLAGS_max_table_bins)) continue;
    for (const codec::LevelSpec& l : levels) {
      if (l.Bins(t.slot) == t.bins) {
        profile.tables.push_back(t);
        if (t.bins > absl::GetFlag(FLAGS_max_repeat_bins))
          profile.tables.back().repeat_freqs.clear();
        break;
      }
    }
  }
  profile.default_level = std::max(0, default_level);
  auto final_codec = codec::KvCodec::Create(profile);
  if (!final_codec.ok()) Die(final_codec.status().ToString());

  const kveval::Score full = Measure(eval, nullptr);
  std::printf("held-out: %lld windows, %lld scored tokens, full PPL %.3f (mean of windows)\n",
              static_cast<long long>(full.windows), static_cast<long long>(full.tokens),
              full.MeanWindowPpl());
  std::printf("%-3s %-10s %-40s %9s %9s %9s %8s\n", "#", "level", "K bins | V bins", "bits/el",
              "ΔPPL %", "KL", "top-1");
  for (size_t i = 0; i < profile.levels.size(); ++i) {
    codec::LevelSpec& l = profile.levels[i];
    const int level = static_cast<int>(i);
    const codec::KvCodec* c = &*final_codec;
    kveval::Score s =
        Measure(eval, [c, level](const codec::KvChunkView& v) -> absl::StatusOr<kveval::Degraded> {
          absl::StatusOr<std::string> bytes = c->Encode(v, level);
          if (!bytes.ok()) return bytes.status();
          absl::StatusOr<codec::DecodedChunk> d = c->Decode(*bytes);
          if (!d.ok()) return d.status();
          return kveval::Degraded{std::move(d->kv), std::move(d->missing_slots), bytes->size()};
        });
    l.bits_per_element = s.BitsPerElement();
    l.kl_nats = s.MeanKl();
    l.delta_ppl_pct = 100 * (s.MeanWindowPpl() / full.MeanWindowPpl() - 1);
    l.top1_agreement = s.Top1();
    std::string bins;  // "B" or "B+r" (r refinement bits) per slot
    auto item = [&l](int slot) {
      return l.Refine(slot) ? absl::StrCat(l.Bins(slot), "+", l.Refine(slot))
                            : absl::StrCat(l.Bins(slot));
    };
    for (int j = 0; j < geo.layers; ++j) absl::StrAppend(&bins, item(2 * j), " ");
    absl::StrAppend(&bins, "|");
    for (int j = 0; j < geo.layers; ++j) absl::StrAppend(&bins, " ", item(2 * j + 1));
    std::printf("%-3zu %-10s %-40s %9.3f %+9.2f %9.5f %8.4f\n", i, l.name.c_str(), bins.c_str(),
                l.bits_per_element, l.delta_ppl_pct, l.kl_nats, l.top1_agreement);
  }
  if (default_level < 0) {  // searched: the smallest level measured at KL <= 0.01, ΔPPL <= 1 %
    profile.default_level = 0;
    for (size_t i = 0; i < profile.levels.size(); ++i) {
      const codec::LevelSpec& l = profile.levels[i];
      if (l.kl_nats <= 0.01 && l.delta_ppl_pct <= 1.0 &&
          l.bits_per_element < profile.levels[profile.default_level].bits_per_element) {
        profile.default_level = static_cast<int>(i);
      }
    }
  }
  std::printf("default level: %d (%s)\n", profile.default_level,
              profile.levels[profile.default_level].name.c_str());
  const std::string bytes = codec::SerializeProfile(profile);
  if (auto p = codec::ParseProfile(bytes); !p.ok()) Die(p.status().ToString());
  std::ofstream out(absl::GetFlag(FLAGS_out), std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) Die("cannot write " + absl::GetFlag(FLAGS_out));
  std::printf("wrote %s (%zu bytes, %zu tables)\n", absl::GetFlag(FLAGS_out).c_str(), bytes.size(),
              profile.tables.size());
  return 0;
}
