// bench_codec: sizes, errors and single-thread speed of every level and the baselines on real
// KV (not a test; prints a table).
//
//   ./build/common/codec/bench_codec [--kv models/golden/tiny-llama.safetensors]
//                                    [--tables profile|chunk|auto] [--min-seconds 0.3]
//                                    [--repeat N   (tile the tokens N times: speed only)]
//                                    [--holdout 1  (profile from the first half of the tokens)]
//                                    [--threads N  (parallel decode scaling up to N threads)]
//                                    [--levels 0,1,2  (only these levels)]
//                                    [--decode-only 1 (rANS levels' decode MB/s only: no
//                                     baselines, encode, portable path or parallel runs)]
//                                    [--best 1  (fastest call instead of the mean: A/B runs)]
//                                    [--ids copy|tiled|none  (token ids, see below)]
//
// Token ids (input_ids of the file, if any) let the encoder use repeat contexts. With
// --repeat N, `copy` (default) renumbers each tiled copy's ids so that ids repeat only within
// a copy (the golden 64 tokens: 15 repeated rows, 23 %), `tiled` repeats them across copies
// (~95 % repeated rows, identical KV: flatters repeat contexts), `none` encodes without ids
// (order-0 coding as before repeat contexts: the "before" of a comparison in the same build).
//
// The profile tables are built from the same KV (in-sample, like the tests) unless
// --tables chunk forces per-chunk tables. MB/s are of raw-fp16-equivalent bytes (2 per element).
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/codec/baselines.h"
#include "common/codec/codec.h"
#include "common/codec/level_table.h"
#include "common/codec/rans_decoder.h"
#include "common/codec/repeat_map.h"
#include "common/tensor/safetensors.h"

using namespace ctx::codec;

namespace {

struct Kv {
  KvGeometry geometry;
  uint32_t tokens = 0;
  std::vector<float> data;
  std::vector<int32_t> ids;  // [tokens] or empty
};

Kv LoadKv(const std::string& path) {
  auto file = ctx::tensor::SafetensorsFile::Open(path);
  if (!file.ok()) {
    std::fprintf(stderr, "%s\n", std::string(file.status().message()).c_str());
    std::exit(1);
  }
  Kv kv;
  int layers = 0;
  while ((*file)->Find("past_key_values." + std::to_string(layers) + ".key")) ++layers;
  const auto* first = (*file)->Find("past_key_values.0.key");
  if (!first || first->shape.size() != 4) {
    std::fprintf(stderr, "no past_key_values.{l}.key [1,H,T,D] in %s\n", path.c_str());
    std::exit(1);
  }
  const int h = static_cast<int>(first->shape[1]), t = static_cast<int>(first->shape[2]),
            d = static_cast<int>(first->shape[3]);
  kv.geometry = KvGeometry{layers, h, d};
  kv.tokens = static_cast<uint32_t>(t);
  const size_t c = static_cast<size_t>(h) * d;
  kv.data.resize(static_cast<size_t>(layers) * 2 * t * c);
  for (int l = 0; l < layers; ++l) {
    for (int part = 0; part < 2; ++part) {
      auto values = (*file)
                        ->Find("past_key_values." + std::to_string(l) + (part ? ".value" : ".key"))
                        ->ToFloat();
      float* dst = kv.data.data() + static_cast<size_t>(2 * l + part) * t * c;
      for (int hh = 0; hh < h; ++hh)
        for (int tt = 0; tt < t; ++tt)
          for (int dd = 0; dd < d; ++dd)
            dst[tt * c + hh * d + dd] = (*values)[(static_cast<size_t>(hh) * t + tt) * d + dd];
    }
  }
  const auto* ids = (*file)->Find("input_ids");
  if (ids && ids->dtype == ctx::tensor::DType::kI64 && ids->NumElements() == t) {
    for (int i = 0; i < t; ++i) {
      int64_t id;
      std::memcpy(&id, ids->bytes.data() + 8 * i, 8);
      kv.ids.push_back(static_cast<int32_t>(id));
    }
  }
  return kv;
}

// CPU seconds of this thread per call, repeating until min_seconds of CPU time have passed (at
// least 3 calls). Thread CPU time, not wall time: the build machine is shared, and wall time
// would charge us for other processes.
double ThreadSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// With `best`: the fastest call instead of the mean (for A/B runs on a noisy shared machine,
// where other processes inflate some calls' CPU time through shared caches).
bool g_best = false;

double TimeIt(const std::function<void()>& fn, double min_seconds) {
  fn();  // warm-up
  int calls = 0;
  const double start = ThreadSeconds();
  double elapsed = 0, fastest = 1e30;
  while (calls < 3 || elapsed < min_seconds) {
    const double t0 = ThreadSeconds();
    fn();
    const double t1 = ThreadSeconds();
    fastest = std::min(fastest, t1 - t0);
    ++calls;
    elapsed = t1 - start;
  }
  return g_best ? fastest : elapsed / calls;
}

Kv Slice(const Kv& kv, uint32_t begin, uint32_t count) {
  Kv out;
  out.geometry = kv.geometry;
  out.tokens = count;
  const size_t c = kv.geometry.channels();
  for (int slot = 0; slot < kv.geometry.slots(); ++slot) {
    const float* src = kv.data.data() + (slot * static_cast<size_t>(kv.tokens) + begin) * c;
    out.data.insert(out.data.end(), src, src + count * c);
  }
  if (!kv.ids.empty()) out.ids.assign(kv.ids.begin() + begin, kv.ids.begin() + begin + count);
  return out;
}

// Relative L2 error of K slots and V slots that were sent.
void RelErr(const Kv& kv, const std::vector<float>& out, const std::vector<int>& missing,
            double* k_err, double* v_err) {
  double num[2] = {0, 0}, den[2] = {0, 0};
  const size_t per = kv.tokens * static_cast<size_t>(kv.geometry.channels());
  for (int slot = 0; slot < kv.geometry.slots(); ++slot) {
    if (std::find(missing.begin(), missing.end(), slot) != missing.end()) continue;
    for (size_t i = slot * per; i < (slot + 1) * per; ++i) {
      const double e = kv.data[i] - out[i];
      num[slot & 1] += e * e;
      den[slot & 1] += static_cast<double>(kv.data[i]) * kv.data[i];
    }
  }
  *k_err = den[0] ? std::sqrt(num[0] / den[0]) : 0;
  *v_err = den[1] ? std::sqrt(num[1] / den[1]) : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = std::string(CTX_BENCH_SOURCE_DIR) + "/models/golden/tiny-llama.safetensors";
  std::string tables = "auto";
  std::string profile_path;  // empty: DefaultLevels with tables built in-sample
  double min_seconds = 0.3;
  int repeat = 1;
  bool holdout = false;
  std::string ids_mode = "copy";
  int max_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int> only_levels;  // empty: all
  bool decode_only = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--kv")) path = argv[i + 1];
    if (!std::strcmp(argv[i], "--tables")) tables = argv[i + 1];
    if (!std::strcmp(argv[i], "--profile")) profile_path = argv[i + 1];
    if (!std::strcmp(argv[i], "--min-seconds")) min_seconds = std::atof(argv[i + 1]);
    if (!std::strcmp(argv[i], "--repeat")) repeat = std::max(1, std::atoi(argv[i + 1]));
    if (!std::strcmp(argv[i], "--holdout")) holdout = std::atoi(argv[i + 1]) != 0;
    if (!std::strcmp(argv[i], "--threads")) max_threads = std::max(1, std::atoi(argv[i + 1]));
    if (!std::strcmp(argv[i], "--ids")) ids_mode = argv[i + 1];
    if (!std::strcmp(argv[i], "--best")) g_best = std::atoi(argv[i + 1]) != 0;
    if (!std::strcmp(argv[i], "--decode-only")) decode_only = std::atoi(argv[i + 1]) != 0;
    if (!std::strcmp(argv[i], "--levels")) {
      for (const char* c = argv[i + 1]; *c;) {
        char* next = nullptr;
        only_levels.push_back(static_cast<int>(std::strtol(c, &next, 10)));
        if (next == c) break;
        c = *next == ',' ? next + 1 : next;
      }
    }
  }
  Kv kv = LoadKv(path);
  Kv train = kv;
  if (holdout) {
    // Profile from the first half of the tokens, measure on the second half (out of sample).
    const uint32_t half = kv.tokens / 2;
    train = Slice(kv, 0, half);
    kv = Slice(kv, half, kv.tokens - half);
  }
  if (repeat > 1) {
    // Synthetic long chunk for SPEED only: the tokens tiled `repeat` times (sizes of zstd are
    // then meaningless, it finds the repeats; table-based coders are not affected).
    const size_t per = kv.tokens * static_cast<size_t>(kv.geometry.channels());
    std::vector<float> tiled;
    for (int slot = 0; slot < kv.geometry.slots(); ++slot) {
      for (int r = 0; r < repeat; ++r) {
        tiled.insert(tiled.end(), kv.data.begin() + slot * per, kv.data.begin() + (slot + 1) * per);
      }
    }
    kv.data = std::move(tiled);
    if (!kv.ids.empty()) {
      const int32_t span = *std::max_element(kv.ids.begin(), kv.ids.end()) + 1;
      std::vector<int32_t> ids;
      for (int r = 0; r < repeat; ++r) {
        for (int32_t id : kv.ids) ids.push_back(ids_mode == "tiled" ? id : id + r * span);
      }
      kv.ids = std::move(ids);
    }
    kv.tokens *= repeat;
  }
  if (ids_mode == "none") kv.ids.clear(), train.ids.clear();
  size_t repeated_rows = 0;
  for (int32_t r : RepeatRows(kv.ids)) repeated_rows += r != kNoRepeat;
  ModelFingerprint fp{};
  std::optional<CodecProfile> file_profile;
  if (!profile_path.empty()) {
    std::ifstream in(profile_path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto p = ParseProfile(bytes);
    if (!p.ok()) {
      std::fprintf(stderr, "%s: %s\n", profile_path.c_str(), p.status().ToString().c_str());
      return 1;
    }
    file_profile = *std::move(p);
    fp = file_profile->fingerprint;
  }
  KvChunkView view;
  view.geometry = kv.geometry;
  view.token_count = kv.tokens;
  view.fingerprint = fp;
  view.data = kv.data;
  view.token_ids = kv.ids;
  const double elements = static_cast<double>(view.NumElements());
  const double fp16_mb = elements * 2 / 1e6;

  ProfileBuilder builder(fp, kv.geometry, DefaultLevels(kv.geometry.layers), DefaultLevelIndex());
  KvChunkView train_view = view;
  train_view.token_count = train.tokens;
  train_view.data = train.data;
  train_view.token_ids = train.ids;
  if (!builder.AddChunk(holdout ? train_view : view).ok()) return 1;
  CodecProfile profile = file_profile ? *file_profile : builder.Build();
  if (tables == "chunk") profile.tables.clear();
  auto codec = KvCodec::Create(profile);
  if (!codec.ok()) return 1;
  EncodeOptions opts;
  if (tables == "profile") opts.tables = TableChoice::kProfile;

  std::printf("KV: %s  layers=%d kv_heads=%d head_dim=%d tokens=%u elements=%.0f\n", path.c_str(),
              kv.geometry.layers, kv.geometry.kv_heads, kv.geometry.head_dim, kv.tokens, elements);
  std::printf("token ids: %s (%zu of %u rows repeat an earlier id of the chunk)\n",
              kv.ids.empty() ? "none" : ids_mode.c_str(), repeated_rows, kv.tokens);
  std::printf("tables: %s (profile %s)\n\n", tables.c_str(),
              file_profile ? profile_path.c_str()
              : holdout    ? "built from the first half of the tokens; rows measure the second half"
                           : "built in-sample from this KV");

  auto wanted = [&](int level) {
    return only_levels.empty() ||
           std::find(only_levels.begin(), only_levels.end(), level) != only_levels.end();
  };
  if (decode_only) {  // quick A/B runs of the rANS decoder: decode MB/s per level, nothing else
    std::vector<float> out(view.NumElements());
    for (int level = 0; level < static_cast<int>(codec->profile().levels.size()); ++level) {
      if (!wanted(level)) continue;
      const std::string bytes = *codec->Encode(view, level, opts);
      const double dec =
          fp16_mb / TimeIt([&] { (void)codec->DecodeInto(bytes, {}, out); }, min_seconds);
      std::printf("L%d %-8s dec MB/s %8.1f\n", level, codec->profile().levels[level].name.c_str(),
                  dec);
    }
    return 0;
  }

  // Baselines.
  const std::string raw = *EncodeRawF16(view);
  const std::string int8 = *EncodeInt8(view);
  auto int8_parsed = ParseChunk(int8);
  const absl::string_view int8_payload = int8_parsed->payload;  // scales + symbols
  std::string zbuf(ZSTD_compressBound(int8_payload.size()), '\0');
  size_t zsize = 0;
  const double zenc = TimeIt(
      [&] {
        zsize =
            ZSTD_compress(zbuf.data(), zbuf.size(), int8_payload.data(), int8_payload.size(), 19);
      },
      min_seconds);
  std::string zback(int8_payload.size(), '\0');
  const double zdec =
      TimeIt([&] { ZSTD_decompress(zback.data(), zback.size(), zbuf.data(), zsize); }, min_seconds);
  const std::string raw_payload(ParseChunk(raw)->payload);
  std::string zraw(ZSTD_compressBound(raw_payload.size()), '\0');
  const size_t zraw_size =
      ZSTD_compress(zraw.data(), zraw.size(), raw_payload.data(), raw_payload.size(), 19);

  std::vector<float> out(view.NumElements());
  auto decode_speed = [&](const std::string& bytes) {
    return fp16_mb / TimeIt([&] { (void)codec->DecodeInto(bytes, {}, out); }, min_seconds);
  };
  const double int8_bits = 8.0 * int8.size() / elements;
  const double zstd_bits = 8.0 * (zsize + kChunkHeaderSize) / elements;

  std::printf("%-12s %8s %8s %7s %7s %9s %9s %8s %8s %9s %9s %9s\n", "encoding", "bytes", "bits/el",
              "payload", "side", "relL2 K", "relL2 V", "x int8", "x zstd", "enc MB/s", "dec MB/s",
              "dec scalar");
  auto row = [&](const char* name, size_t bytes, double payload_bits, double side_bits, double ek,
                 double ev, double enc, double dec, double dec_scalar = 0) {
    const double bits = 8.0 * bytes / elements;
    std::printf("%-12s %8zu %8.3f %7.3f %7.3f %9.4f %9.4f %8.2f %8.2f %9.1f %9.1f", name, bytes,
                bits, payload_bits, side_bits, ek, ev, int8_bits / bits, zstd_bits / bits, enc,
                dec);
    if (dec_scalar > 0) std::printf(" %9.1f", dec_scalar);
    std::printf("\n");
  };
  {
    const double enc = fp16_mb / TimeIt([&] { (void)EncodeRawF16(view); }, min_seconds);
    const double dec = decode_speed(raw);
    auto d = codec->Decode(raw);
    double ek, ev;
    RelErr(kv, d->kv, d->missing_slots, &ek, &ev);
    row("raw-f16", raw.size(), 16.0, 8.0 * (raw.size() - elements * 2) / elements, ek, ev, enc,
        dec);
  }
  {
    const double enc = fp16_mb / TimeIt([&] { (void)EncodeInt8(view); }, min_seconds);
    const double dec = decode_speed(int8);
    auto d = codec->Decode(int8);
    double ek, ev;
    RelErr(kv, d->kv, d->missing_slots, &ek, &ev);
    row("int8", int8.size(), 8.0, 8.0 * (int8.size() - elements) / elements, ek, ev, enc, dec);
    // zstd -19 over the int8 payload (symbols + scales), same errors as int8.
    row("int8+zstd19", zsize + kChunkHeaderSize, 8.0 * zsize / elements,
        8.0 * kChunkHeaderSize / elements, ek, ev, fp16_mb / zenc + 0 * zenc, fp16_mb / zdec);
    std::printf("%-12s %8zu %8.3f  (zstd -19 over raw fp16 values, lossless)\n", "f16+zstd19",
                zraw_size, 8.0 * zraw_size / elements);
  }
  for (int level = 0; level < static_cast<int>(codec->profile().levels.size()); ++level) {
    if (!wanted(level)) continue;
    EncodeStats stats;
    const std::string bytes = *codec->Encode(view, level, opts, &stats);
    const double enc =
        fp16_mb / TimeIt([&] { (void)codec->Encode(view, level, opts); }, min_seconds);
    const double dec = decode_speed(bytes);
    double dec_scalar = 0;
    if (RansSimdAvailable()) {  // the portable path, for comparison
      SetRansSimdEnabled(false);
      dec_scalar = decode_speed(bytes);
      SetRansSimdEnabled(true);
    }
    auto d = codec->Decode(bytes);
    double ek, ev;
    RelErr(kv, d->kv, d->missing_slots, &ek, &ev);
    const std::string name =
        "L" + std::to_string(level) + " " + codec->profile().levels[level].name;
    const size_t payload = stats.stream_bytes + stats.refine_bytes;
    row(name.c_str(), bytes.size(), 8.0 * payload / elements,
        8.0 * (stats.total_bytes - payload) / elements, ek, ev, enc, dec, dec_scalar);
    std::printf(
        "%-12s   scales %.3f  tables %.3f  repeat map %.3f  header+dir %.3f bits/el; %d slots "
        "with chunk tables, %d with repeat contexts\n",
        "", 8.0 * stats.scale_bytes / elements, 8.0 * stats.table_bytes / elements,
        8.0 * stats.repeat_bytes / elements, 8.0 * stats.header_bytes / elements,
        stats.slots_with_chunk_tables, stats.slots_with_repeat);
  }
  std::printf(
      "\npayload = rANS symbols + raw refinement bits; side = scales + chunk tables + repeat map "
      "+ header, section and slot directories, rANS lane states.\n");

  // Parallel decode (KvCodec::DecodeChunks): 4 chunks per thread at the default level. Wall
  // time (parallelism is about wall time) and process CPU time; noisy on a shared machine.
  {
    const int level = codec->profile().default_level;
    const std::string bytes = *codec->Encode(view, level, opts);
    const int chunks = 4 * max_threads;
    std::vector<absl::string_view> in(chunks, bytes);
    std::vector<std::vector<float>> bufs(chunks, std::vector<float>(view.NumElements()));
    std::vector<std::span<float>> outs(bufs.begin(), bufs.end());
    std::printf("\nparallel decode, level L%d, %d chunks of %u tokens:\n", level, chunks,
                kv.tokens);
    std::printf("%8s %12s %14s %9s\n", "threads", "wall MB/s", "CPU s/chunk", "speedup");
    double base = 0;
    for (int threads = 1; threads <= max_threads; threads *= 2) {
      auto run = [&] { (void)codec->DecodeChunksInto(in, {}, outs, threads); };
      run();
      timespec c0, c1;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
      const auto w0 = std::chrono::steady_clock::now();
      int reps = 0;
      double wall = 0;
      while (reps < 3 || wall < min_seconds) {
        run();
        ++reps;
        wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
      }
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
      const double cpu = (c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec);
      const double mbs = fp16_mb * chunks * reps / wall;
      if (threads == 1) base = mbs;
      std::printf("%8d %12.1f %14.6f %9.2f\n", threads, mbs, cpu / (chunks * reps), mbs / base);
      if (threads * 2 > max_threads && threads != max_threads) threads = max_threads / 2;
    }
  }
  return 0;
}
