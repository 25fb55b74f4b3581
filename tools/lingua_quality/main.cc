// lingua_quality [docs_dir] [context_tokens] [continuation_tokens]: does LLMLingua-2
// compression keep what the LM needs? (issue #5)
//
// For each *.txt document in docs_dir (default tests/data/long_docs) with enough text: the first
// `context_tokens` (1000) tiny-llama tokens are the context, the next `continuation_tokens`
// (128) the continuation. Prints tiny-llama's perplexity of the continuation given
//   (a) the full context,
//   (b) the context compressed by ctx::lingua (tiny-lingua2) at rate 0.5 and 0.33,
//   (c) the context with uniformly random words dropped (seeded) down to the same number of
//       tiny-llama tokens as (b) kept,
// and the mean per condition. Lower is better; (b) < (c) means the classifier keeps more
// useful words than chance.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/lingua/chunk_scorer.h"
#include "common/lingua/lingua_model.h"
#include "common/lingua/prompt_compressor.h"
#include "common/lingua/token_counter.h"
#include "common/model/model.h"
#include "common/tokenizer/tokenizer.h"

namespace {

using ctx::model::Logits;
using ctx::model::Model;
using ctx::tokenizer::Tokenizer;

// Perplexity of `continuation` after <s> + `context` ids.
double ContinuationPpl(const Model& model, std::span<const int32_t> context,
                       std::span<const int32_t> continuation) {
  std::vector<int32_t> prefix{1};  // <s>
  prefix.insert(prefix.end(), context.begin(), context.end());
  auto cache = model.NewKvCache();
  // All but the last prefix token only fill the cache; the last one's logits predict
  // continuation[0], continuation[i]'s predict continuation[i + 1].
  if (prefix.size() > 1) {
    auto st = model.Forward(std::span<const int32_t>(prefix.data(), prefix.size() - 1), cache,
                            Logits::kNone, nullptr);
    if (!st.ok()) return NAN;
  }
  std::vector<int32_t> rest{prefix.back()};
  rest.insert(rest.end(), continuation.begin(), continuation.end() - 1);
  std::vector<float> logits;  // [rest.size()][V]
  if (!model.Forward(rest, cache, Logits::kAll, &logits).ok()) return NAN;
  const size_t V = static_cast<size_t>(model.config().vocab_size);
  double nll = 0;
  for (size_t i = 0; i < continuation.size(); ++i) {
    const float* row = logits.data() + i * V;
    const float mx = *std::max_element(row, row + V);
    double sum = 0;
    for (size_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
    nll += -(static_cast<double>(row[continuation[i]] - mx) - std::log(sum));
  }
  return std::exp(nll / static_cast<double>(continuation.size()));
}

std::vector<std::string> Words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

// Keeps a seeded uniformly random subset of the words (in order), the smallest that has at
// least `target_tokens` tiny-llama tokens.
std::vector<int32_t> RandomDrop(const Tokenizer& tok, const std::string& text, size_t target_tokens,
                                uint64_t seed) {
  const auto words = Words(text);
  std::vector<size_t> order(words.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  auto encode_first = [&](size_t k) {
    std::vector<size_t> keep(order.begin(), order.begin() + static_cast<long>(k));
    std::sort(keep.begin(), keep.end());
    std::string s;
    for (size_t i : keep) s += (s.empty() ? "" : " ") + words[i];
    return tok.Encode(s, false).value_or(std::vector<int32_t>{});
  };
  size_t lo = 0, hi = words.size();  // binary search the smallest k reaching the target
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (encode_first(mid).size() >= target_tokens) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return encode_first(lo);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string root = CTX_SOURCE_DIR;
  const std::string docs = argc > 1 ? argv[1] : root + "/tests/data/long_docs";
  const size_t n_ctx = argc > 2 ? static_cast<size_t>(std::atoi(argv[2])) : 1000;
  const size_t n_cont = argc > 3 ? static_cast<size_t>(std::atoi(argv[3])) : 128;

  auto model = Model::Load(root + "/models/tiny-llama");
  auto tok = Tokenizer::LoadFromModelDir(root + "/models/tiny-llama");
  auto lingua = ctx::lingua::LinguaModel::Load(root + "/models/tiny-lingua2");
  auto counter =
      ctx::lingua::SentencePieceTokenCounter::Load(root + "/models/tiny-llama/tokenizer.model");
  if (!model.ok() || !tok.ok() || !lingua.ok() || !counter.ok()) {
    std::fprintf(stderr, "cannot load models/tiny-llama or models/tiny-lingua2\n");
    return 1;
  }
  ctx::lingua::ClassifierScorer scorer(lingua->classifier.get());
  ctx::lingua::PromptCompressor pc(lingua->tokenizer.get(), &scorer, counter->get());

  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(docs)) {
    if (e.path().extension() == ".txt") files.push_back(e.path());  // not index.json
  }
  std::sort(files.begin(), files.end());

  const double rates[] = {0.5, 0.33};
  const char* names[] = {"full", "lingua 0.5", "random 0.5", "lingua 0.33", "random 0.33"};
  constexpr int kConds = 5;
  double sum_ppl[kConds] = {}, sum_log_ppl[kConds] = {}, sum_tokens[kConds] = {};
  int n_docs = 0;
  std::printf("%-44s", "document (ppl; kept tokens)");
  for (const char* n : names) std::printf(" %16s", n);
  std::printf("\n");
  for (const auto& f : files) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    auto ids = (*tok)->Encode(ss.str(), false);
    if (!ids.ok() || ids->size() < n_ctx + n_cont) continue;
    const std::span<const int32_t> all(*ids);
    const auto cont = all.subspan(n_ctx, n_cont);
    auto ctx_text = (*tok)->Decode(all.subspan(0, n_ctx));
    if (!ctx_text.ok()) continue;
    std::vector<std::vector<int32_t>> contexts{
        std::vector<int32_t>(all.begin(), all.begin() + static_cast<long>(n_ctx))};
    for (double r : rates) {
      ctx::lingua::CompressOptions o;
      o.rate = r;
      o.force_tokens = {"\n", "."};
      auto c = pc.Compress(std::vector<std::string>{*ctx_text}, o);
      if (!c.ok()) {
        std::fprintf(stderr, "%s: %s\n", f.c_str(), c.status().ToString().c_str());
        return 1;
      }
      auto kept = (*tok)->Encode(c->compressed_prompt, false);
      if (!kept.ok()) return 1;
      contexts.push_back(*kept);
      contexts.push_back(RandomDrop(**tok, *ctx_text, kept->size(), 1234 + n_docs));
    }
    std::string name = std::filesystem::path(f).filename().string().substr(0, 44);
    std::printf("%-44s", name.c_str());
    for (int k = 0; k < kConds; ++k) {
      const double ppl = ContinuationPpl(**model, contexts[static_cast<size_t>(k)], cont);
      sum_ppl[k] += ppl;
      sum_log_ppl[k] += std::log(ppl);
      sum_tokens[k] += static_cast<double>(contexts[static_cast<size_t>(k)].size());
      std::printf(" %9.2f; %5zu", ppl, contexts[static_cast<size_t>(k)].size());
    }
    std::printf("\n");
    std::fflush(stdout);
    ++n_docs;
  }
  if (n_docs == 0) {
    std::fprintf(stderr, "no document in %s has %zu tokens\n", docs.c_str(), n_ctx + n_cont);
    return 1;
  }
  std::printf("\n%d documents, context %zu tokens, continuation %zu tokens\n", n_docs, n_ctx,
              n_cont);
  std::printf("%-20s %12s %16s %14s\n", "condition", "mean PPL", "geo-mean PPL", "mean tokens");
  for (int k = 0; k < kConds; ++k) {
    std::printf("%-20s %12.2f %16.2f %14.0f\n", names[k], sum_ppl[k] / n_docs,
                std::exp(sum_log_ppl[k] / n_docs), sum_tokens[k] / n_docs);
  }
  return 0;
}
