// LLMLingua-2 pipeline rules, one test each, with hand-computed expectations. A fake scorer
// assigns p(keep) per piece string so the arithmetic is under the test's control; the real
// tokenizer (models/tiny-lingua2/sentencepiece.bpe.model) provides the pieces.
#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "common/lingua/percentile.h"
#include "common/lingua/prompt_compressor.h"

namespace ctx::lingua {
namespace {

const std::string kModels = std::string(CTX_SOURCE_DIR) + "/models/";

const XlmrTokenizer& Tok() {
  static auto t = XlmrTokenizer::Load(kModels + "tiny-lingua2/sentencepiece.bpe.model");
  return **t;
}

// p(keep) by piece string (specials and unknown pieces: `fallback`).
class FakeScorer : public ChunkScorer {
 public:
  FakeScorer(std::map<std::string, float> p, float fallback = 0.5f)
      : p_(std::move(p)), fallback_(fallback) {}
  absl::StatusOr<std::vector<std::vector<float>>> KeepProbs(
      std::span<const std::vector<int32_t>> seqs) const override {
    std::vector<std::vector<float>> out;
    for (const auto& s : seqs) {
      out.emplace_back();
      for (int32_t id : s) {
        auto it = p_.find(Tok().IdToPiece(id));
        out.back().push_back(it == p_.end() ? fallback_ : it->second);
      }
    }
    return out;
  }

 private:
  std::map<std::string, float> p_;
  float fallback_;
};

// One token per byte that is not a space: "a" = 1, "Hello" = 5, "\n" = 1.
class CharCounter : public TokenCounter {
 public:
  size_t Count(absl::string_view text) const override {
    size_t n = 0;
    for (char ch : text) n += ch != ' ';
    return n;
  }
};

const std::string kU = "\xE2\x96\x81";  // ▁

CompressResult Run(const std::map<std::string, float>& probs, std::vector<std::string> contexts,
                   const CompressOptions& o) {
  FakeScorer scorer(probs);
  CharCounter counter;
  PromptCompressor pc(&Tok(), &scorer, &counter);
  auto r = pc.Compress(contexts, o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

TEST_CASE("percentile: NumPy linear interpolation incl. the mirrored lerp", "[lingua][rules]") {
  std::vector<double> v{4, 1, 3, 2};  // sorted 1 2 3 4
  CHECK(NumpyPercentile(v, 0) == 1.0);
  CHECK(NumpyPercentile(v, 100) == 4.0);
  CHECK(NumpyPercentile(v, 50) == Approx(2.5));   // h = 1.5
  CHECK(NumpyPercentile(v, 51) == Approx(2.53));  // h = 1.53, g >= 0.5: 3 - 0.47 * 1
  CHECK(NumpyPercentile(v, 10) == Approx(1.3));   // h = 0.3: 1 + 0.3 * 1
  std::vector<double> one{0.7};
  CHECK(NumpyPercentile(one, 37) == 0.7);
  std::vector<double> ties{0.5, 0.5, 0.5};
  CHECK(NumpyPercentile(ties, 51) == 0.5);
}

TEST_CASE("percentile: the reference's integer truncation for rates 0.1..0.9", "[lingua][rules]") {
  const std::pair<double, int> table[] = {{0.1, 91},  {0.2, 81},  {0.25, 76}, {0.3, 71},
                                          {0.33, 68}, {0.4, 61},  {0.5, 51},  {0.6, 41},
                                          {0.7, 31},  {0.75, 26}, {0.8, 20},  {0.9, 10}};
  for (auto [rate, q] : table) {
    INFO("rate " << rate);
    CHECK(TokenLevelPercentile(std::max(0.0, 1.0 - rate)) == q);
  }
  CHECK(TokenLevelPercentile(0.0) == 1);
  CHECK(DropConsecutivePercentile(0.5) == 50);
  CHECK(ContextLevelPercentile(0.8) == 19);  // rate 0.6 -> (0.6 + 1) / 2 -> int(19.999...)
  CHECK(ContextLevelPercentile(0.6) == 40);
  CHECK(ContextLevelPercentile(0.75) == 25);
}

TEST_CASE("merge: specials skipped, mean vs first, no-force quirk", "[lingua][rules]") {
  ForceTokens none;
  std::vector<std::string> pieces{"<s>", kU + "Hel", "lo", ",", kU + "world", "</s>"};
  std::vector<float> probs{0.9f, 0.2f, 0.4f, 0.3f, 0.8f, 0.9f};
  auto w = MergeTokensToWords(pieces, probs, none, false, Tok());
  REQUIRE(w.size() == 3);
  CHECK(w[0].stored == kU + "Hello");
  CHECK(w[0].text == " Hello");
  CHECK(w[1].stored == ",");
  CHECK(w[2].stored == kU + "world");
  CHECK(WordProbability(w[0].probs, TokenToWord::kMean) == Approx((0.2 + 0.4) / 2));
  CHECK(WordProbability(w[0].probs, TokenToWord::kFirst) == Approx(0.2));
  // reference quirk: continuation pieces repeat the first piece's p in the no-force list
  CHECK(w[0].probs_no_force ==
        std::vector<double>{static_cast<double>(0.2f), static_cast<double>(0.2f)});
  CHECK(StripLeadingMetaspace(w[0].stored) == "Hello");
  // `token in string.punctuation` is a substring test: "()" starts a word, "(a" does not.
  std::vector<std::string> p2{kU + "f", "()", "(a", "x"};
  std::vector<float> q2{0.1f, 0.2f, 0.3f, 0.4f};
  auto w2 = MergeTokensToWords(p2, q2, none, false, Tok());
  REQUIRE(w2.size() == 2);
  CHECK(w2[1].stored == "()(ax");
}

TEST_CASE("merge: a newline byte piece is its own word and ends the word before it",
          "[lingua][rules]") {
  // Our tokenizer keeps "\n" as <0x0A> and the next line's first piece has no "▁". Before the
  // fix "▁world <0x0A> <0x0A> This" was ONE word, mean (0.8 + 0.1 + 0.1 + 0.6) / 4 = 0.4.
  ForceTokens none;
  std::vector<std::string> pieces{"<s>",     kU + "world", "<0x0A>", "<0x0A>", "This",
                                  kU + "is", "<0x09>",     "x",      "</s>"};
  std::vector<float> probs{0.5f, 0.8f, 0.1f, 0.1f, 0.6f, 0.4f, 0.2f, 0.3f, 0.5f};
  auto w = MergeTokensToWords(pieces, probs, none, false, Tok());
  REQUIRE(w.size() == 7);
  CHECK(w[0].stored == kU + "world");
  CHECK(w[1].stored == "<0x0A>");
  CHECK(w[1].text == "\n");
  CHECK(w[2].text == "\n");
  CHECK(w[3].stored == "This");
  CHECK(w[3].probs == std::vector<double>{static_cast<double>(0.6f)});
  CHECK(w[3].after_whitespace_piece);
  CHECK_FALSE(w[4].after_whitespace_piece);  // "▁is" brings its own space
  CHECK(w[5].text == "\t");
  CHECK(w[6].stored == "x");
  CHECK(w[6].after_whitespace_piece);
  // A kept word after a dropped newline gets a separating space; after a kept one it does not.
  std::string out = " world";
  AppendKeptWord(w[3], out);
  CHECK(out == " world This");
  out = " world\n";
  AppendKeptWord(w[3], out);
  CHECK(out == " world\nThis");
  CHECK(IsWhitespaceBytePiece("<0x0D>"));
  CHECK_FALSE(IsWhitespaceBytePiece("<0x20>"));  // a space is "▁" in sentencepiece
  CHECK_FALSE(IsWhitespaceBytePiece("<0x0E>"));
}

TEST_CASE("compress: dropped newlines leave a space, kept ones none", "[lingua][rules]") {
  // "The world\n\nThis is" -> ▁The ▁world <0x0A> <0x0A> This ▁is (all single pieces).
  // Counts (CharCounter): The 3, world 5, \n 1, \n 1, This 4, is 2 -> 16 weighted values.
  CompressOptions o;
  o.rate = 0.8;  // q = 20: h = 0.2 * 15 = 3
  // sorted: .1 .1 | .4 .4 | .6 x4 | .8 x5 | .9 x3 -> T = v[3] = 0.4; keep p > 0.4
  auto r = Run({{kU + "The", 0.9f},
                {kU + "world", 0.8f},
                {"<0x0A>", 0.1f},
                {"This", 0.6f},
                {kU + "is", 0.4f}},
               {"The world\n\nThis is"}, o);
  CHECK(r.compressed_prompt == "The world This");  // before the fix: "The"
  o.rate = 0.9;  // q = 10: h = 1.5, sorted .4 .4 .7 ... -> T = .7 - .5 * .3 = 0.55
  r = Run({{kU + "The", 0.9f},
           {kU + "world", 0.8f},
           {"<0x0A>", 0.95f},
           {"This", 0.7f},
           {kU + "is", 0.4f}},
          {"The world\n\nThis is"}, o);
  CHECK(r.compressed_prompt == "The world\n\nThis");
}

// CharCounter plus one dummy-prefix token per call, like sentencepiece's "▁": "\n" = 2 alone.
class PrefixCounter : public TokenCounter {
 public:
  size_t Count(absl::string_view text) const override {
    return text.empty() ? 0 : 1 + CharCounter().Count(text);
  }
};

TEST_CASE("threshold: a newline word weighs what it costs after a word, not alone",
          "[lingua][rules]") {
  // "The world\n\nThis is", PrefixCounter weights: The 4, world 6, This 5, is 3, each "\n"
  // Count("a\n") - Count("a") = 3 - 2 = 1 (alone it would be 2).
  // p: The .9, world .8, \n .5, This .6, is .2; rate 0.7 -> q = 31.
  // Fixed, 20 values: .2 x3 | .5 x2 | .6 x5 | .8 x6 | .9 x4; h = 0.31 * 19 = 5.89 ->
  //   v[5] = v[6] = .6 -> T = 0.6 -> "This" (.6) dropped (strict >): "The world".
  // "\n" weighted 2, 22 values: .2 x3 | .5 x4 | .6 x5 ...; h = 0.31 * 21 = 6.51 -> v[6] = .5,
  //   v[7] = .6, g = .51 -> T = .6 - .49 * .1 = 0.551 -> "This" kept: "The world This".
  FakeScorer scorer({{kU + "The", 0.9f},
                     {kU + "world", 0.8f},
                     {"<0x0A>", 0.5f},
                     {"This", 0.6f},
                     {kU + "is", 0.2f}});
  PrefixCounter counter;
  PromptCompressor pc(&Tok(), &scorer, &counter);
  CompressOptions o;
  o.rate = 0.7;
  auto r = pc.Compress(std::vector<std::string>{"The world\n\nThis is"}, o);
  REQUIRE(r.ok());
  CHECK(r->compressed_prompt == "The world");
}

TEST_CASE("merge: force tokens and [NEWi] get p = 1, restored in the word", "[lingua][rules]") {
  PromptCompressor pc(&Tok(), nullptr, nullptr);
  std::vector<std::string> ft{"\n", ".", "world"};
  ForceTokens f = pc.BuildForceTokens(ft);
  // "\n" is two pieces (▁ <0x0A>) -> [NEW0]; "." (▁.) and "world" (▁world) are one piece each.
  REQUIRE(f.substitutions.size() == 1);
  CHECK(f.substitutions[0] == std::make_pair(std::string("\n"), std::string("[NEW0]")));
  std::vector<std::string> pieces{kU + "a", "[NEW0]", kU + "world", ".", kU + "b"};
  std::vector<float> probs{0.3f, 0.2f, 0.1f, 0.4f, 0.6f};
  auto w = MergeTokensToWords(pieces, probs, f, false, Tok());
  REQUIRE(w.size() == 5);
  CHECK(w[1].stored == "\n");
  CHECK(w[1].probs[0] == 1.0);
  CHECK(w[1].probs_no_force[0] == Approx(0.2));
  CHECK(w[2].probs[0] == 1.0);  // pure "world" is a force token
  CHECK(w[3].probs[0] == 1.0);  // bare "." piece
  CHECK(w[4].probs[0] == Approx(0.6));
  CHECK(f.SubstituteAll("x\ny") == "x[NEW0]y");
  CHECK(f.RestoreAll("x[NEW0]y") == "x\ny");
}

TEST_CASE("merge: force_reserve_digit forces digit pieces only", "[lingua][rules]") {
  ForceTokens none;
  std::vector<std::string> pieces{kU + "ab", "c", "1", "2", kU + "x"};
  std::vector<float> probs{0.2f, 0.3f, 0.1f, 0.4f, 0.5f};
  auto w = MergeTokensToWords(pieces, probs, none, true, Tok());
  REQUIRE(w.size() == 2);
  CHECK(w[0].stored == kU + "abc12");
  // "abc12" = mean(0.2, 0.3, 1, 1), not forced to 1 (reference behaviour)
  CHECK(WordProbability(w[0].probs, TokenToWord::kMean) == Approx((0.2 + 0.3 + 1 + 1) / 4));
  auto w2 = MergeTokensToWords(pieces, probs, none, false, Tok());
  CHECK(WordProbability(w2[0].probs, TokenToWord::kMean) == Approx((0.2 + 0.3 + 0.1 + 0.4) / 4));
  CHECK(ContainsDecimalDigit("\xD9\xA3"));           // U+0663 ARABIC-INDIC DIGIT THREE
  CHECK(ContainsDecimalDigit("\xEF\xBC\x95"));       // U+FF15 FULLWIDTH DIGIT FIVE
  CHECK_FALSE(ContainsDecimalDigit("abc\xC2\xB2"));  // U+00B2 superscript two is not Nd
}

TEST_CASE("threshold: weighted percentile, strict >, forced words at T == 1", "[lingua][rules]") {
  CompressOptions o;
  const std::map<std::string, float> p{
      {kU + "a", 0.1f}, {kU + "b", 0.2f}, {kU + "c", 0.3f}, {kU + "d", 0.4f}, {kU + "e", 0.5f}};
  // rate 0.5: q = 51, h = 2.04 -> T = 0.304: keep d e
  auto r = Run(p, {"a b c d e"}, o);
  CHECK(r.compressed_prompt == "d e");
  CHECK(r.origin_tokens == 5);
  CHECK(r.compressed_tokens == 2);
  CHECK(r.ratio == "2.5x");
  CHECK(r.rate == "40.0%");
  // rate 0.6: q = 41, h = 1.64 (mirrored lerp) -> T = 0.264: keep c d e
  o.rate = 0.6;
  CHECK(Run(p, {"a b c d e"}, o).compressed_prompt == "c d e");

  // Strict >: every word at T = 0.5 is dropped.
  o.rate = 0.5;
  auto flat = Run({}, {"a b c d e"}, o);
  CHECK(flat.compressed_prompt.empty());
  CHECK(flat.compressed_tokens == 0);
  CHECK(flat.ratio == "1.0x");

  // Forced words survive; when T == 1 only the forced ones (p == T) survive.
  o.force_tokens = {"b", "d"};
  CHECK(Run({}, {"a b c d e"}, o).compressed_prompt == "b d");  // T = 0.5
  o.rate = 0.1;                                                 // q = 91 -> T = 1
  CHECK(Run({}, {"a b c d e"}, o).compressed_prompt == "b d");

  // Token weighting: "Hello" counts 5 tokens (CharCounter) at p 0.2 -> expanded
  // [.2 x5, .6, .9], q = 51, h = 3.06 -> T = 0.2: keep a and b. Unweighted would keep b only.
  CompressOptions w;
  auto rw = Run({{kU + "H", 0.2f}, {"el", 0.2f}, {"lo", 0.2f}, {kU + "a", 0.6f}, {kU + "b", 0.9f}},
                {"Hello a b"}, w);
  CHECK(rw.compressed_prompt == "a b");
}

TEST_CASE("token_to_word first vs mean changes the decision", "[lingua][rules]") {
  // Hello: pieces .9 .1 .2 -> mean .4, first .9; a = .5 (weights 5 and 1 with CharCounter).
  const std::map<std::string, float> p{
      {kU + "H", 0.9f}, {"el", 0.1f}, {"lo", 0.2f}, {kU + "a", 0.5f}, {kU + "b", 0.45f}};
  CompressOptions o;
  // mean: expanded [.4 x5, .5, .45] sorted -> h = 3.06 -> T = .4 -> keep a, b
  CHECK(Run(p, {"Hello a b"}, o).compressed_prompt == "a b");
  o.token_to_word = TokenToWord::kFirst;
  // first: [.9 x5, .5, .45] sorted .45 .5 .9... h = 3.06 -> T = .9 -> nothing > .9
  CHECK(Run(p, {"Hello a b"}, o).compressed_prompt.empty());
}

TEST_CASE("drop_consecutive zeroes repeated force tokens", "[lingua][rules]") {
  const std::map<std::string, float> p{{kU + "a", 0.1f}, {kU + "b", 0.9f}};
  CompressOptions o;
  o.force_tokens = {"\n"};
  // words a(.1) b(.9) \n(1) \n(1) \n(1): sorted [.1 .9 1 1 1], q 51 -> T = 1: only forced kept
  CHECK(Run(p, {"a b\n\n\n"}, o).compressed_prompt == "\n\n\n");
  // drop_consecutive: pre-threshold q 50 -> 1; nothing significant between the newlines, so
  // the 2nd and 3rd get p 0 -> [.1 .9 1 0 0], T = .1 + .04 * .8 = .132: keep b and "\n".
  o.drop_consecutive = true;
  o.return_word_label = true;
  auto r = Run(p, {"a b\n\n\n"}, o);
  CHECK(r.compressed_prompt == "b\n");
  REQUIRE(r.word_labels.size() == 5);
  CHECK(r.word_labels[3].prob == 0.0);
  CHECK(r.word_labels[4].prob == 0.0);
}

TEST_CASE("chunking: <= 511 pieces, cut after the last end token", "[lingua][rules]") {
  PromptCompressor pc(&Tok(), nullptr, nullptr);
  std::string text;
  for (int s = 0; s < 100; ++s)
    text += (s ? " " : "") + std::string("w w w w x.");  // 6 pieces each
  auto chunks = pc.ChunkContext(text, {".", "\n"});
  // ed = 510 is "▁w" (510 = 6 * 85); the scan back finds "." at 509: chunk 0..509, then 90.
  REQUIRE(chunks.size() == 2);
  CHECK(Tok().Tokenize(chunks[0]).size() == 510);
  CHECK(Tok().Tokenize(chunks[1]).size() == 90);
  CHECK(chunks[0].substr(chunks[0].size() - 2) == "x.");
  CHECK(chunks[1].substr(0, 2) == "w ");  // leading space of the chunk removed

  std::string no_end;
  for (int i = 0; i < 600; ++i) no_end += "w ";
  auto c2 = pc.ChunkContext(no_end, {"."});
  REQUIRE(c2.size() == 2);
  auto p0 = Tok().Tokenize(c2[0]);
  CHECK(p0.size() == 511);
  // 511 pieces + 2 specials > 512: the trailing </s> is dropped, as in the reference.
  auto ids = pc.ChunkIds(p0);
  CHECK(ids.size() == 512);
  CHECK(ids.front() == XlmrTokenizer::kBos);
  CHECK(ids.back() == p0.back().id);
}

TEST_CASE("reference special-token mode feeds <unk> around each chunk", "[lingua][rules]") {
  PromptCompressor pc(&Tok(), nullptr, nullptr, CompressorConfig::ReferenceCompat());
  auto ids = pc.ChunkIds(Tok().Tokenize("a b"));
  CHECK(ids == std::vector<int32_t>{3, 266 - 1, 281, 3});
}

TEST_CASE("context-level filter keeps contexts with mean score >= percentile", "[lingua][rules]") {
  const std::map<std::string, float> p{{kU + "a", 0.8f}, {kU + "b", 0.99f}, {kU + "c", 0.1f},
                                       {kU + "d", 0.2f}, {kU + "e", 0.4f},  {kU + "f", 0.6f}};
  CompressOptions o;  // rate .5 -> context_level_rate .75 -> q 25
  o.return_word_label = true;
  // scores .895 .15 .5 -> T = .5 - .5 * .35 = .325: contexts 0 and 2 kept.
  // token level: ctx0 [.8 .99] T = .8969 -> b; ctx2 [.4 .6] T = .502 -> f
  auto r = Run(p, {"a b", "c d", "e f"}, o);
  CHECK(r.compressed_prompt == "b\n\nf");
  CHECK(r.compressed_prompt_list.size() == 2);
  CHECK(r.fn_labeled_original_prompt ==
        "a 0\t\t|\t\tb 1\t\t|\t\tc 0\t\t|\t\td 0\t\t|\t\te 0\t\t|\t\tf 1");
  o.force_context_ids = {1};
  CHECK(Run(p, {"a b", "c d", "e f"}, o).compressed_prompt == "b\n\nd\n\nf");
  // Filter off: all three contexts compressed on their own.
  o.use_context_level_filter = false;
  o.force_context_ids.clear();
  CHECK(Run(p, {"a b", "c d", "e f"}, o).compressed_prompt == "b\n\nd\n\nf");
}

TEST_CASE("target_token sets the global rate, rate 1 returns the text", "[lingua][rules]") {
  const std::map<std::string, float> p{
      {kU + "a", 0.1f}, {kU + "b", 0.2f}, {kU + "c", 0.3f}, {kU + "d", 0.4f}, {kU + "e", 0.5f}};
  CompressOptions o;
  o.rate = 0.9;        // ignored
  o.target_token = 2;  // 2 / 5 -> rate .4 -> q 61 -> T = .344: d e
  auto r = Run(p, {"a b c d e"}, o);
  CHECK(r.compressed_prompt == "d e");
  CHECK(r.compressed_tokens == 2);
  o.target_token = 50;  // min(50 / 5, 1) = 1: no compression, no model call
  o.return_word_label = true;
  auto full = Run(p, {"a b c d e"}, o);
  CHECK(full.compressed_prompt == "a b c d e");
  CHECK(full.fn_labeled_original_prompt == "a 1\t\t|\t\tb 1\t\t|\t\tc 1\t\t|\t\td 1\t\t|\t\te 1");
  CompressOptions one;
  one.rate = 1.0;
  CHECK(Run(p, {"a b c d e"}, one).compressed_prompt == "a b c d e");
}

TEST_CASE("bad input gives InvalidArgument with a clear message", "[lingua][rules]") {
  FakeScorer scorer({});
  CharCounter counter;
  PromptCompressor pc(&Tok(), &scorer, &counter);
  CompressOptions o;
  auto code = [&](std::vector<std::string> ctx, const CompressOptions& opt) {
    auto r = pc.Compress(ctx, opt);
    return r.status().code();
  };
  CHECK(code({}, o) == absl::StatusCode::kInvalidArgument);
  CHECK(code({""}, o) == absl::StatusCode::kInvalidArgument);
  CHECK(code({"ok", ""}, o) == absl::StatusCode::kInvalidArgument);
  CHECK(code({"bad \xFF utf8"}, o) == absl::StatusCode::kInvalidArgument);
  CHECK(code({"surrogate \xED\xA0\x80"}, o) == absl::StatusCode::kInvalidArgument);
  for (double bad : {0.0, -0.5, 1.5}) {
    CompressOptions b;
    b.rate = bad;
    auto r = pc.Compress(std::vector<std::string>{"a b"}, b);
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(r.status().message()).find("rate") != std::string::npos);
  }
  CompressOptions many;
  for (int i = 0; i < 101; ++i) many.force_tokens.push_back("t" + std::to_string(i));
  CHECK(code({"a b"}, many) == absl::StatusCode::kInvalidArgument);
  CompressorConfig small;
  small.max_input_bytes = 4;
  PromptCompressor tiny(&Tok(), &scorer, &counter, small);
  CHECK(tiny.Compress(std::vector<std::string>{"too long"}, o).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ctx::lingua
