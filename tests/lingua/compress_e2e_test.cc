// End to end: the trained tiny-lingua2 classifier compressing a real paragraph, token counts
// in the tiny-llama tokenizer (the default counter).
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "common/lingua/lingua_model.h"
#include "common/lingua/prompt_compressor.h"

namespace ctx::lingua {
namespace {

const std::string kModels = std::string(CTX_SOURCE_DIR) + "/models/";

const char* kParagraph =
    "Control groups, usually referred to as cgroups, are a Linux kernel feature which allow "
    "processes to be organized into hierarchical groups whose usage of various types of "
    "resources can then be limited and monitored. The kernel's cgroup interface is provided "
    "through a pseudo-filesystem called cgroupfs. Grouping is implemented in the core cgroup "
    "kernel code, while resource tracking and limits are implemented in a set of per-resource-"
    "type subsystems (memory, CPU, and so on).\n\n"
    "A cgroup is a collection of processes that are bound to a set of limits or parameters "
    "defined via the cgroup filesystem. A subsystem is a kernel component that modifies the "
    "behavior of the processes in a cgroup. Various subsystems have been implemented, making "
    "it possible to do things such as limiting the amount of CPU time and memory available to "
    "a cgroup, accounting for the CPU time used by a cgroup, and freezing and resuming "
    "execution of the processes in a cgroup. Subsystems are sometimes also known as resource "
    "controllers (or simply, controllers).\n\n"
    "The cgroups for a controller are arranged in a hierarchy. This hierarchy is defined by "
    "creating, removing, and renaming subdirectories within the cgroup filesystem. At each "
    "level of the hierarchy, attributes (e.g., limits) can be defined. The limits, control, "
    "and accounting provided by cgroups generally have effect throughout the subhierarchy "
    "underneath the cgroup where the attributes are defined.\n";

struct Fixture {
  LinguaModel model;
  std::unique_ptr<SentencePieceTokenCounter> counter;
  std::unique_ptr<ClassifierScorer> scorer;
  Fixture() {
    auto m = LinguaModel::Load(kModels + "tiny-lingua2");
    REQUIRE(m.ok());
    model = *std::move(m);
    auto c = SentencePieceTokenCounter::Load(kModels + "tiny-llama/tokenizer.model");
    REQUIRE(c.ok());
    counter = *std::move(c);
    scorer = std::make_unique<ClassifierScorer>(model.classifier.get());
  }
};

size_t CountChar(const std::string& s, char ch) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), ch));
}

TEST_CASE("tiny-lingua2 compresses a paragraph near the rate, forced tokens survive",
          "[lingua][e2e]") {
  Fixture f;
  PromptCompressor pc(f.model.tokenizer.get(), f.scorer.get(), f.counter.get());
  for (double rate : {0.5, 0.33}) {
    CompressOptions o;
    o.rate = rate;
    o.force_tokens = {"\n", "(", ")"};
    o.return_word_label = true;
    auto r = pc.Compress(std::vector<std::string>{kParagraph}, o);
    REQUIRE(r.ok());
    const double kept =
        static_cast<double>(r->compressed_tokens) / static_cast<double>(r->origin_tokens);
    INFO("rate " << rate << " kept " << kept << " ratio " << r->ratio << "\n"
                 << r->compressed_prompt);
    CHECK(r->origin_tokens == static_cast<int64_t>(f.counter->Count(kParagraph)));
    CHECK(kept > rate - 0.12);
    CHECK(kept < rate + 0.12);
    CHECK(CountChar(r->compressed_prompt, '\n') == CountChar(kParagraph, '\n'));
    // Forced words (p = 1: "\n", and words that start with a "(" or ")" piece) all survive;
    // a word like "(memory" merged from "▁(" + "memory" is scored as a whole (reference rule).
    size_t forced = 0;
    for (const auto& w : r->word_labels) {
      if (w.prob == 1.0) {
        ++forced;
        CHECK(w.label == 1);
      }
    }
    CHECK(forced >= CountChar(kParagraph, '\n'));
    // labels cover every word; kept labels' fraction tracks the rate
    size_t ones = 0;
    for (const auto& w : r->word_labels) ones += w.label;
    CHECK(ones > 0);
    CHECK(ones < r->word_labels.size());
    // the output is a subsequence of kept words: every kept word occurs in the output
    for (const auto& w : r->word_labels) {
      if (w.label == 1 && w.word != "\n")
        CHECK(r->compressed_prompt.find(w.word) != std::string::npos);
    }
  }
}

TEST_CASE("batching contexts together gives the same output as one at a time", "[lingua][e2e]") {
  Fixture f;
  PromptCompressor pc(f.model.tokenizer.get(), f.scorer.get(), f.counter.get());
  std::string text(kParagraph);
  std::vector<std::string> parts{text.substr(0, text.find("\n\n")),
                                 text.substr(text.find("\n\n") + 2)};
  CompressOptions o;
  o.use_context_level_filter = false;
  auto both = pc.Compress(parts, o);
  REQUIRE(both.ok());
  REQUIRE(both->compressed_prompt_list.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    auto one = pc.Compress(std::vector<std::string>{parts[i]}, o);
    REQUIRE(one.ok());
    CHECK(one->compressed_prompt == both->compressed_prompt_list[i]);
  }
}

TEST_CASE("reference-compat mode runs and counts the stored ▁ words", "[lingua][e2e]") {
  Fixture f;
  PromptCompressor pc(f.model.tokenizer.get(), f.scorer.get(), f.counter.get(),
                      CompressorConfig::ReferenceCompat());
  CompressOptions o;
  o.force_tokens = {"\n"};
  auto r = pc.Compress(std::vector<std::string>{kParagraph}, o);
  REQUIRE(r.ok());
  CHECK(r->compressed_tokens > 0);
  CHECK(r->compressed_tokens < r->origin_tokens);
  CHECK(CountChar(r->compressed_prompt, '\n') == CountChar(kParagraph, '\n'));
}

TEST_CASE("LinguaModel explains a missing sentencepiece model", "[lingua]") {
  auto m = LinguaModel::Load(kModels + "golden");
  CHECK(m.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(m.status().message()).find("sentencepiece.bpe.model") != std::string::npos);
}

}  // namespace
}  // namespace ctx::lingua
