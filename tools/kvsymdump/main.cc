// kvsymdump: writes the exact symbols the rANS codec would code (QuantizeSlot, per 256-token
// chunk, 8-bit grid scales) for real tiny-llama KV, as .npy files, so that entropy models can be
// studied offline (tools/kvsymdump/ctx_entropy.py; docs/kv-codec-measurements.md §5).
//
//   ./build/bin/kvsymdump --out /tmp/kvsym [--profile_windows 32]
//
// Windows, exactly as the shipped profile and kvquality take them:
//   calib/NNN_*  calibrate's table documents (models/calibration minus the long documents, every
//                2nd long one held out), first min(len, 1024) tokens, whole 256-token chunks;
//   eval/NNN_*   the 20 long documents (tests/data/long_docs), KV of context[0 : n-1],
//                n = min(1024, len/2), chunks of 256 (the last one 255 tokens).
// Per window: ids.npy int32 [T] (token ids of the KV rows), scale.npy float32 [S][T] (the
// stored grid scale of each row), sym.npy uint8 [P][T][C] with P = the (slot, bins) pairs of
// pairs.txt ("slot bins" a line; slot = 2·layer + K0/V1), the union over --levels.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "common/codec/byte_io.h"
#include "common/codec/codec.h"
#include "common/codec/profile.h"
#include "common/codec/quantizer.h"
#include "nlohmann/json.hpp"
#include "tools/kvquality/eval_setup.h"
#include "tools/kvquality/kv_eval.h"

ABSL_FLAG(std::string, model_dir, "models/tiny-llama", "model directory");
ABSL_FLAG(std::string, text, "models/calibration/valid.txt", "calibration corpus");
ABSL_FLAG(std::string, ids, "models/calibration/valid.ids.txt", "document ids of --text");
ABSL_FLAG(std::string, docs_dir, "tests/data/long_docs", "long documents + index.json");
ABSL_FLAG(std::string, out, "/tmp/kvsym", "output folder (calib/, eval/, pairs.txt)");
ABSL_FLAG(int, profile_windows, 32, "calibration windows (the shipped profile used 32)");
ABSL_FLAG(std::string, codec_profile, "models/tiny-llama/kvcodec.profile",
          "profile whose levels encode the long documents' chunks (the real coder's sizes, "
          "written to codec_sizes.txt)");
ABSL_FLAG(std::string, levels,
          "0 6 12 16 32 32|0 6 6 6 6 12;0 6 12 16 32 32|0 4 6 6 6 8;"
          "0 6 12 16 16 32|0 4 4 4 4 8;0 6 12 20 24 32|0 4 6 6 6 8",
          "K bins|V bins per level, ';'-separated (default: OC-r0, OD-r0, OE-r0 and P4 of "
          "docs/kv-codec-measurements.md §4)");

namespace {

namespace codec = ctx::codec;
namespace kveval = ctx::kveval;
using kveval::Die;

// A minimal .npy (v1.0) writer: little-endian, C order.
void WriteNpy(const std::string& path, const char* descr, const std::vector<size_t>& shape,
              const void* data, size_t bytes) {
  std::string dims;
  for (size_t d : shape) dims += std::to_string(d) + ",";
  std::string header =
      "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  const uint16_t len = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(&len), 2);
  f << header;
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!f) Die("cannot write " + path);
}

struct Pair {
  int slot, bins;
  auto operator<=>(const Pair&) const = default;
};

// KV [layers][K|V][T][C] of tokens [0, n) -> the window's files, quantized per `chunk` tokens.
// Per profile level, the real encoder's sizes summed over chunks (EncodeStats fields).
struct LevelSizes {
  double elements = 0, total = 0, header = 0, scales = 0, tables = 0, stream = 0;
};

void DumpWindow(const ctx::model::KvCache& cache, const codec::KvGeometry& geo,
                std::span<const int32_t> ids, int n, int chunk, const std::vector<Pair>& pairs,
                const std::string& prefix, const codec::KvCodec* coder,
                std::vector<LevelSizes>* sizes) {
  const int C = geo.channels(), S = geo.slots();
  std::vector<uint8_t> sym(pairs.size() * n * C);
  std::vector<float> scale(static_cast<size_t>(S) * n);
  for (int a = 0; a < n; a += chunk) {
    const int b = std::min(n, a + chunk), T = b - a;
    const std::vector<float> kv = kveval::ChunkFromCache(cache, geo, a, b);
    if (coder) {
      const codec::KvChunkView view{
          geo, static_cast<uint64_t>(a), static_cast<uint32_t>(T), coder->profile().fingerprint,
          kv,  ids.subspan(a, T)};
      for (size_t l = 0; l < sizes->size(); ++l) {
        codec::EncodeStats st;
        if (!coder->Encode(view, static_cast<int>(l), {}, &st).ok()) Die("encode");
        LevelSizes& z = (*sizes)[l];
        z.elements += static_cast<double>(view.NumElements());
        z.total += 8.0 * st.total_bytes;
        z.header += 8.0 * st.header_bytes;
        z.scales += 8.0 * st.scale_bytes;
        z.tables += 8.0 * st.table_bytes;
        z.stream += 8.0 * (st.stream_bytes + st.refine_bytes);  // + raw refinement bits (v3)
      }
    }
    for (int s = 0; s < S; ++s) {
      const float* x = kv.data() + static_cast<size_t>(s) * T * C;
      std::string side;
      std::vector<uint8_t> q(static_cast<size_t>(T) * C);
      if (!codec::QuantizeSlot(x, T, C, 4, &side, q.data(), nullptr).ok()) Die("quantize");
      codec::ByteReader r(side);
      codec::ScaleGrid g;
      g.lo_f16 = r.U16();
      g.ratio_m = r.U16();
      float grid[codec::kScaleCodes];
      if (!g.Expand(grid)) Die("scale grid");
      for (int t = 0; t < T; ++t) scale[static_cast<size_t>(s) * n + a + t] = grid[r.U8()];
      if (!r.ok()) Die("scale codes");
      for (size_t p = 0; p < pairs.size(); ++p) {
        if (pairs[p].slot != s) continue;
        side.clear();
        if (!codec::QuantizeSlot(x, T, C, pairs[p].bins, &side, q.data(), nullptr).ok()) {
          Die("quantize");
        }
        std::copy(q.begin(), q.end(), sym.begin() + (p * n + a) * C);
      }
    }
  }
  WriteNpy(prefix + "ids.npy", "<i4", {static_cast<size_t>(n)}, ids.data(), n * 4);
  WriteNpy(prefix + "scale.npy", "<f4", {static_cast<size_t>(S), static_cast<size_t>(n)},
           scale.data(), scale.size() * 4);
  WriteNpy(prefix + "sym.npy", "|u1",
           {pairs.size(), static_cast<size_t>(n), static_cast<size_t>(C)}, sym.data(), sym.size());
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  kveval::EvalModel setup = kveval::LoadEvalModelOrDie(absl::GetFlag(FLAGS_model_dir));
  const codec::KvGeometry geo = setup.geometry;
  const int chunk = 256;

  std::set<Pair> pair_set;
  for (absl::string_view level : absl::StrSplit(absl::GetFlag(FLAGS_levels), ';')) {
    std::vector<std::string> kv = absl::StrSplit(level, '|');
    if (kv.size() != 2) Die("level '" + std::string(level) + "' is not 'K bins|V bins'");
    for (int part = 0; part < 2; ++part) {
      std::istringstream in(kv[part]);
      int layer = 0;
      for (int b; in >> b; ++layer) {
        if (b != 0 && (!codec::ValidBins(b) || layer >= geo.layers)) Die("bad bins");
        if (b != 0) pair_set.insert({2 * layer + part, b});
      }
    }
  }
  const std::vector<Pair> pairs(pair_set.begin(), pair_set.end());
  const std::string out = absl::GetFlag(FLAGS_out);
  std::filesystem::create_directories(out + "/calib");
  std::filesystem::create_directories(out + "/eval");
  {
    std::ofstream f(out + "/pairs.txt");
    for (const Pair& p : pairs) f << p.slot << " " << p.bins << "\n";
  }

  // Calibration documents: calibrate's selection (tools/calibrate/main.cc).
  const std::vector<std::string> docs =
      kveval::SplitDocuments(kveval::ReadFileOrDie(absl::GetFlag(FLAGS_text)));
  std::vector<std::string> doc_ids =
      absl::StrSplit(kveval::ReadFileOrDie(absl::GetFlag(FLAGS_ids)), '\n');
  auto index = nlohmann::json::parse(
      kveval::ReadFileOrDie(absl::GetFlag(FLAGS_docs_dir) + "/index.json"), nullptr, false);
  if (!index.is_array()) Die("long_docs index.json is not a JSON array");
  std::set<std::string> excluded;
  for (const auto& e : index) excluded.insert(e.at("doc_id").get<std::string>());
  int used = 0, long_docs = 0;
  for (size_t i = 0; i < docs.size() && used < absl::GetFlag(FLAGS_profile_windows); ++i) {
    if (i < doc_ids.size() && excluded.count(doc_ids[i])) continue;
    auto t = setup.tokenizer->Encode(docs[i], /*add_bos=*/true);
    if (!t.ok()) Die(t.status().ToString());
    if (static_cast<int>(t->size()) < 2 * chunk) continue;
    if (t->size() >= 1280 && long_docs++ % 2 == 1) continue;  // held out by calibrate
    int n = std::min<int>(static_cast<int>(t->size()), 1024);
    n -= n % chunk;
    ctx::model::KvCache cache = setup.model->NewKvCache(n);
    if (auto s = setup.model->Forward(std::span<const int32_t>(t->data(), n), cache,
                                      ctx::model::Logits::kNone, nullptr);
        !s.ok()) {
      Die(s.ToString());
    }
    char name[32];
    std::snprintf(name, sizeof name, "/calib/%03d_", used++);
    DumpWindow(cache, geo, *t, n, chunk, pairs, out + name, nullptr, nullptr);
  }

  std::optional<codec::KvCodec> coder;
  std::vector<LevelSizes> sizes;
  if (!absl::GetFlag(FLAGS_codec_profile).empty()) {
    auto profile = codec::ParseProfile(kveval::ReadFileOrDie(absl::GetFlag(FLAGS_codec_profile)));
    if (!profile.ok()) Die(profile.status().ToString());
    auto c = codec::KvCodec::Create(*std::move(profile));
    if (!c.ok()) Die(c.status().ToString());
    coder.emplace(*std::move(c));
    sizes.resize(coder->profile().levels.size());
  }

  // Long documents: kvquality's window 0.
  int k = 0;
  for (const auto& entry : index) {
    const std::string text = kveval::ReadFileOrDie(absl::GetFlag(FLAGS_docs_dir) + "/" +
                                                   entry.at("file").get<std::string>());
    auto t = setup.tokenizer->Encode(text, /*add_bos=*/true);
    if (!t.ok()) Die(t.status().ToString());
    const int n = std::min<int>(1024, static_cast<int>(t->size()) / 2) - 1;
    ctx::model::KvCache cache = setup.model->NewKvCache(n);
    if (auto s = setup.model->Forward(std::span<const int32_t>(t->data(), n), cache,
                                      ctx::model::Logits::kNone, nullptr);
        !s.ok()) {
      Die(s.ToString());
    }
    char name[32];
    std::snprintf(name, sizeof name, "/eval/%03d_", k++);
    DumpWindow(cache, geo, *t, n, chunk, pairs, out + name, coder ? &*coder : nullptr, &sizes);
  }
  if (coder) {
    std::ofstream f(out + "/codec_sizes.txt");
    f << "# level name: bits/element over the long documents' chunks: all-in payload(stream) "
         "scales header chunk_tables\n";
    for (size_t l = 0; l < sizes.size(); ++l) {
      const LevelSizes& z = sizes[l];
      f << l << " " << coder->profile().levels[l].name << " " << z.total / z.elements << " "
        << z.stream / z.elements << " " << z.scales / z.elements << " " << z.header / z.elements
        << " " << z.tables / z.elements << "\n";
    }
  }
  std::fprintf(stderr, "%d calibration windows, %d long documents, %zu (slot, bins) pairs -> %s\n",
               used, k, pairs.size(), out.c_str());
  return 0;
}
