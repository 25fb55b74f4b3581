// Writes small valid seed inputs for each fuzz target: fuzz_seeds <dir> creates
// <dir>/<target>/seed-<n>. Deterministic, so a corpus can be rebuilt at any time
// (scripts/fuzz.sh runs it before fuzzing; nothing generated is committed).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/codec/baselines.h"
#include "common/rpc/kv_parts.h"
#include "ctxstream/v1/compressor.pb.h"
#include "ctxstream/v1/inference.pb.h"
#include "ctxstream/v1/kvcache.pb.h"
#include "tests/fuzz/fuzz_codec.h"

namespace {

namespace fs = std::filesystem;
using namespace ctx;

struct Corpus {
  fs::path dir;
  int n = 0;
  void Add(const std::string& bytes) {
    std::ofstream(dir / ("seed-" + std::to_string(n++)), std::ios::binary) << bytes;
  }
};

Corpus Open(const fs::path& root, const std::string& target) {
  fs::create_directories(root / target);
  return Corpus{root / target};
}

std::string LengthPrefixed(const std::vector<std::string>& messages) {
  std::string out;
  for (const std::string& m : messages) {
    out.push_back(static_cast<char>(m.size() & 0xff));
    out.push_back(static_cast<char>(m.size() >> 8));
    out += m;
  }
  return out;
}

std::string Must(absl::StatusOr<std::string> s) {
  if (!s.ok()) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", s.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(s);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds <corpus-root>\n");
    return 2;
  }
  const fs::path root = argv[1];
  const codec::KvCodec& codec = fuzz::ProfileCodec();
  const std::vector<float> kv = fuzz::SampleKv(fuzz::kTokens, 7);
  const codec::KvChunkView view = fuzz::View(kv, fuzz::kTokens);

  // Codec decoder: mode byte 1 (recompute checksum) / 3 (+ expected options), every level
  // with profile and per-chunk tables, and both baselines.
  std::vector<std::string> chunks;
  for (size_t level = 0; level < codec.profile().levels.size(); ++level) {
    for (codec::TableChoice t :
         {codec::TableChoice::kProfile, codec::TableChoice::kChunkPerChannel,
          codec::TableChoice::kChunkShared, codec::TableChoice::kProfileRepeat}) {
      chunks.push_back(Must(codec.Encode(view, static_cast<int>(level), {.tables = t})));
    }
  }
  // Refinement bits (wire v3: slot directory field + section 4), profile and chunk tables.
  const absl::StatusOr<codec::LevelSpec> refined =
      codec::ParseLevelBins("r", "8+3 16+5|4+1 32+8", fuzz::kGeometry.layers);
  if (!refined.ok()) std::exit(1);
  for (codec::TableChoice t : {codec::TableChoice::kAuto, codec::TableChoice::kChunkShared}) {
    chunks.push_back(Must(codec.EncodeWithBins(view, *refined, {.tables = t})));
  }
  chunks.push_back(Must(codec::EncodeRawF16(view)));
  chunks.push_back(Must(codec::EncodeInt8(view)));
  Corpus decode = Open(root, "fuzz_codec_decode");
  for (size_t i = 0; i < chunks.size(); ++i)
    decode.Add(std::string(1, i % 2 ? '\3' : '\1') + chunks[i]);

  Corpus profiles = Open(root, "fuzz_codec_profile");
  profiles.Add("\1" + codec::SerializeProfile(codec.profile()));
  codec::CodecProfile with_refine = codec.profile();  // profile v2 refinement fields
  with_refine.levels[0].key_refine = {3, 5};
  with_refine.levels[0].value_refine = {1, 8};
  profiles.Add("\1" + codec::SerializeProfile(with_refine));

  // safetensors: 8-byte little-endian header length, JSON header, data.
  Corpus st = Open(root, "fuzz_safetensors");
  for (const std::string& header :
       {std::string(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},)"
                    R"("__metadata__":{"format":"pt"}})"),
        std::string(R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}})")}) {
    std::string file(8, '\0');
    for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    file += header;
    file += std::string(12, '\x3f');
    st.Add(file);
  }

  // KV parts: a chunk cut into 3 parts, then a second chunk in one part.
  ctxstream::v1::ChunkRef ref;
  ref.set_context_id("ctx-1");
  ref.set_chunk_index(0);
  std::vector<std::string> parts;
  for (const auto& p :
       rpc::SplitKvChunk(ref, ctxstream::v1::KV_ENCODING_CACHEGEN, 1, std::string(300, 'k'), 128)) {
    parts.push_back(p.SerializeAsString());
  }
  ref.set_chunk_index(1);
  for (const auto& p : rpc::SplitKvChunk(ref, ctxstream::v1::KV_ENCODING_RAW, -1, "xyz")) {
    parts.push_back(p.SerializeAsString());
  }
  Open(root, "fuzz_kv_parts").Add(LengthPrefixed(parts));

  // Requests: selector byte + message(s).
  Corpus req = Open(root, "fuzz_requests");
  ctxstream::v1::CompressRequest compress;
  compress.add_contexts("The quick brown fox jumps over the lazy dog.");
  compress.set_rate(0.5f);
  compress.set_token_to_word("first");
  compress.add_force_tokens("\n");
  req.Add(std::string(1, '\0') + compress.SerializeAsString());
  std::vector<std::string> generate;
  ctxstream::v1::GenerateRequest start;
  auto* seg = start.mutable_start()->add_segments();
  seg->set_token_begin(0);
  seg->set_token_end(3);
  seg->mutable_tokens()->add_ids(1);
  seg->mutable_tokens()->add_ids(2);
  seg->mutable_tokens()->add_ids(3);
  generate.push_back(start.SerializeAsString());
  for (const auto& p :
       rpc::SplitKvChunk(ref, ctxstream::v1::KV_ENCODING_CACHEGEN, 0, std::string(100, 'v'), 64)) {
    ctxstream::v1::GenerateRequest kvmsg;
    *kvmsg.mutable_kv() = p;
    generate.push_back(kvmsg.SerializeAsString());
  }
  req.Add(std::string(1, '\1') + LengthPrefixed(generate));
  ctxstream::v1::FetchRequest fetch;
  fetch.set_context_id("ctx-1");
  fetch.set_tenant("t");
  fetch.set_chunk_index(2);
  fetch.set_level(1);
  req.Add(std::string(1, '\2') + fetch.SerializeAsString());

  // Tokenizer: text to encode (odd first byte), ids to decode (even).
  Corpus tok = Open(root, "fuzz_tokenizer");
  tok.Add("\1Hello, world! Zürich 東京 \xf0\x9f\x99\x82");
  tok.Add(std::string("\0", 1) +
          std::string("\x01\x00\x00\x00\x20\x00\x00\x00\xff\xff\x00\x00", 12));
  std::printf("fuzz_seeds: wrote seeds under %s\n", root.c_str());
  return 0;
}
