// XLM-R token classifier vs the HF golden vectors (models/golden/*.safetensors): a padded
// batch of 2; logits and every hidden state compared at attention_mask == 1 positions.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>

#include "common/lingua/xlmr_classifier.h"
#include "common/lingua/xlmr_tokenizer.h"
#include "common/tensor/safetensors.h"

namespace ctx::lingua {
namespace {

const std::string kModels = std::string(CTX_SOURCE_DIR) + "/models/";

std::vector<int64_t> ReadI64(const tensor::TensorView& t) {
  std::vector<int64_t> v(static_cast<size_t>(t.NumElements()));
  std::memcpy(v.data(), t.bytes.data(), v.size() * sizeof(int64_t));
  return v;
}

// Max |a - b| over rows (b, t) with mask 1; row width w.
double MaxDiffMasked(const std::vector<float>& a, const std::vector<float>& b,
                     const std::vector<int64_t>& mask, int64_t w) {
  double m = 0;
  for (size_t r = 0; r < mask.size(); ++r) {
    if (mask[r] == 0) continue;
    for (int64_t i = 0; i < w; ++i) {
      const size_t k = r * static_cast<size_t>(w) + static_cast<size_t>(i);
      m = std::max(m, std::fabs(static_cast<double>(a[k]) - b[k]));
    }
  }
  return m;
}

void CheckGolden(const std::string& model) {
  auto clf = XlmrClassifier::Load(kModels + model);
  REQUIRE(clf.ok());
  auto golden = tensor::SafetensorsFile::Open(kModels + "golden/" + model + ".safetensors");
  REQUIRE(golden.ok());
  const auto* ids_t = (*golden)->Find("input_ids");
  const auto* mask_t = (*golden)->Find("attention_mask");
  REQUIRE(ids_t != nullptr);
  REQUIRE(mask_t != nullptr);
  auto ids = ReadI64(*ids_t);
  auto mask = ReadI64(*mask_t);
  EncoderBatch batch;
  batch.batch = ids_t->shape[0];
  batch.seq_len = ids_t->shape[1];
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.ids.push_back(static_cast<int32_t>(ids[i]));
    batch.mask.push_back(static_cast<uint8_t>(mask[i]));
  }
  auto out = (*clf)->Forward(batch, /*want_hidden=*/true);
  REQUIRE(out.ok());
  const auto& c = (*clf)->config();

  auto logits = (*golden)->Find("logits")->ToFloat();
  REQUIRE(logits.ok());
  const double dl = MaxDiffMasked(out->logits, *logits, mask, 2);
  INFO(model << " logits max diff " << dl);
  CHECK(dl < 1e-4);
  REQUIRE(out->hidden_states.size() == static_cast<size_t>(c.num_layers + 1));
  for (int64_t l = 0; l <= c.num_layers; ++l) {
    auto h = (*golden)->Find("hidden_states." + std::to_string(l))->ToFloat();
    REQUIRE(h.ok());
    const double dh =
        MaxDiffMasked(out->hidden_states[static_cast<size_t>(l)], *h, mask, c.hidden_size);
    INFO(model << " hidden_states." << l << " max diff " << dh);
    CHECK(dh < 1e-4);
  }

  // The same rows run unpadded, one at a time, give the same real-token logits.
  for (int64_t r = 0; r < batch.batch; ++r) {
    std::vector<int32_t> row;
    for (int64_t t = 0; t < batch.seq_len; ++t)
      if (mask[static_cast<size_t>(r * batch.seq_len + t)])
        row.push_back(batch.ids[static_cast<size_t>(r * batch.seq_len + t)]);
    std::vector<std::vector<int32_t>> one{row};
    auto single = (*clf)->Forward(EncoderBatch::Pad(one, 1));
    REQUIRE(single.ok());
    double d = 0;
    for (size_t t = 0; t < row.size(); ++t)
      for (int k = 0; k < 2; ++k)
        d = std::max(
            d,
            std::fabs(
                static_cast<double>(single->logits[t * 2 + static_cast<size_t>(k)]) -
                out->logits[(static_cast<size_t>(r) * static_cast<size_t>(batch.seq_len) + t) * 2 +
                            static_cast<size_t>(k)]));
    CHECK(d < 1e-5);
  }
}

TEST_CASE("rand-xlmr matches HF golden (logits, hidden states)", "[lingua][golden]") {
  CheckGolden("rand-xlmr");
}

TEST_CASE("tiny-lingua2 (bf16 weights) matches golden", "[lingua][golden]") {
  CheckGolden("tiny-lingua2");
}

TEST_CASE("classifier rejects bad ids and over-long sequences", "[lingua]") {
  auto clf = XlmrClassifier::Load(kModels + "rand-xlmr");
  REQUIRE(clf.ok());
  std::vector<std::vector<int32_t>> bad{{0, 99999, 2}};
  auto r = (*clf)->Forward(EncoderBatch::Pad(bad, 1));
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  std::vector<std::vector<int32_t>> longseq{std::vector<int32_t>(513, 5)};
  r = (*clf)->Forward(EncoderBatch::Pad(longseq, 1));
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  std::vector<std::vector<int32_t>> ok512{std::vector<int32_t>(512, 5)};
  CHECK((*clf)->Forward(EncoderBatch::Pad(ok512, 1)).ok());
  CHECK(XlmrClassifier::Load(kModels + "does-not-exist").status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("tokenizer: fairseq id mapping and [NEWi] added tokens", "[lingua]") {
  auto tok = XlmrTokenizer::Load(kModels + "tiny-lingua2/sentencepiece.bpe.model");
  REQUIRE(tok.ok());
  const auto& t = **tok;
  CHECK(t.mask_id() == 8193);
  CHECK(t.added_token_base() == 8194);
  CHECK(t.PieceToId("<s>") == 0);
  CHECK(t.PieceToId("<pad>") == 1);
  CHECK(t.PieceToId("</s>") == 2);
  CHECK(t.PieceToId("<unk>") == 3);
  CHECK(t.PieceToId("<0x0A>") == 14);  // spm 13 -> 14
  CHECK(t.PieceToId("[NEW7]") == 8201);
  CHECK(t.IdToPiece(8201) == "[NEW7]");
  CHECK(t.IdToPiece(14) == "<0x0A>");
  // README example: "Hello world\n  x = 12345" -> spm ids [588, 391, 310, 5351, 13, ...]
  auto p = t.Tokenize("Hello world\n  x = 12345");
  std::vector<int32_t> want{589, 392,  311,  5352, 14,   260,  8115,
                            467, 8080, 8121, 8126, 8133, 8135, 8138};
  REQUIRE(p.size() == want.size());
  for (size_t i = 0; i < p.size(); ++i) CHECK(p[i].id == want[i]);
  CHECK(t.PiecesToString({p.size() ? std::vector<std::string>{} : std::vector<std::string>{}}) ==
        "");
  std::vector<std::string> strs;
  for (auto& x : p) strs.push_back(x.text);
  CHECK(t.PiecesToString(strs) == "Hello world\n  x = 12345");
  auto q = t.Tokenize("a[NEW3]b[NEW100]");
  REQUIRE(q.size() >= 3);
  CHECK(q[1].text == "[NEW3]");
  CHECK(q[1].id == 8197);
  CHECK(q[2].text ==
        "\xE2\x96\x81"
        "b");                        // dummy prefix after an added token
  CHECK(q.back().id != 8194 + 100);  // [NEW100] is not an added token (only 0..99)
}

}  // namespace
}  // namespace ctx::lingua
