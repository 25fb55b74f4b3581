// lingua_quality [docs_dir] [context_tokens] [continuation_tokens] [--force=TOKENS]
//                [--token_to_word=mean|first] [--force_reserve_digit] [--drop_consecutive]
//                [--diagnostics] [--seeds=N] [--dump_probs=FILE]
// Does LLMLingua-2 compression keep what the LM needs? (issue #5)
//
// For each *.txt document in docs_dir (default tests/data/long_docs) with enough text: the first
// `context_tokens` (1000) tiny-llama tokens are the context, the next `continuation_tokens`
// (128) the continuation. tiny-llama's perplexity of the continuation (always the same ids,
// scored after <s> + context) given
//   full      the full context,
//   lingua    the context compressed by ctx::lingua (tiny-lingua2) at rate 0.5 and 0.33
//             (reference defaults: no force tokens, token_to_word mean; --force / --token_to_word
//             change them; --force takes a comma list, "\n" written as \n),
//   random    uniformly random whitespace-separated words dropped (words joined by one space),
//             the smallest random subset with at least as many tiny-llama tokens as `lingua`
//             kept; mean PPL over `--seeds` (3) seeds,
// and with --diagnostics two more conditions through the SAME pipeline (chunking, merging,
// thresholding, text reconstruction) with other word scores:
//   pipe-rand p(keep) ~ U(0, 1) per piece: what the classifier adds over chance,
//   oracle    the teacher's own label score, 1 - exp(-surprisal) of each piece under
//             tiny-llama given the preceding context of its chunk: what a perfect classifier of
//             the training target would do.
// --dump_probs=FILE writes "classifier_id p_keep" lines of the first document's first window
// (<s> + 510 pieces + </s>) and exits: check_probs.py compares them with modeling.py.
// Prints a per-document line and, per rate, mean / geo-mean PPL, mean kept tokens and the
// number of documents on which each condition beats `random`. Lower PPL is better.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
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

// Surprisal -log p(ids[i] | <s> ids[0..i)) of every id, in nats.
std::vector<double> Surprisals(const Model& model, std::span<const int32_t> ids) {
  if (ids.empty()) return {};
  std::vector<int32_t> in{1};  // <s>
  in.insert(in.end(), ids.begin(), ids.end() - 1);
  auto cache = model.NewKvCache();
  std::vector<float> logits;  // [n][V]
  if (!model.Forward(in, cache, Logits::kAll, &logits).ok()) return {};
  const size_t V = static_cast<size_t>(model.config().vocab_size);
  std::vector<double> s(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const float* row = logits.data() + i * V;
    const float mx = *std::max_element(row, row + V);
    double sum = 0;
    for (size_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
    s[i] = -(static_cast<double>(row[ids[i]] - mx) - std::log(sum));
  }
  return s;
}

// Of the continuation's bigrams (a, b) that occur in `full`, the fraction that still occur in
// `context`: how many copy targets (what an LM predicts by induction) a compression keeps.
double CopyBigramsKept(std::span<const int32_t> full, std::span<const int32_t> context,
                       std::span<const int32_t> continuation) {
  auto bigrams = [](std::span<const int32_t> s) {
    std::vector<uint64_t> b;
    for (size_t i = 1; i < s.size(); ++i)
      b.push_back(static_cast<uint64_t>(static_cast<uint32_t>(s[i - 1])) << 32 |
                  static_cast<uint32_t>(s[i]));
    std::sort(b.begin(), b.end());
    return b;
  };
  const auto in_full = bigrams(full), in_ctx = bigrams(context), in_cont = bigrams(continuation);
  size_t n = 0, kept = 0;
  for (uint64_t b : in_cont) {
    if (!std::binary_search(in_full.begin(), in_full.end(), b)) continue;
    ++n;
    kept += std::binary_search(in_ctx.begin(), in_ctx.end(), b);
  }
  return n ? static_cast<double>(kept) / static_cast<double>(n) : 1.0;
}

// Perplexity of `continuation` after <s> + `context`.
double ContinuationPpl(const Model& model, std::span<const int32_t> context,
                       std::span<const int32_t> continuation) {
  std::vector<int32_t> all(context.begin(), context.end());
  all.insert(all.end(), continuation.begin(), continuation.end());
  const auto s = Surprisals(model, all);
  if (s.size() != all.size()) return NAN;
  double nll = 0;
  for (size_t i = context.size(); i < all.size(); ++i) nll += s[i];
  return std::exp(nll / static_cast<double>(continuation.size()));
}

std::vector<std::string> Words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

// Keeps a seeded uniformly random subset of the words (in order, joined by " "), the smallest
// that has at least `target_tokens` tiny-llama tokens.
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

// p(keep) ~ U(0, 1), seeded.
class UniformScorer : public ctx::lingua::ChunkScorer {
 public:
  explicit UniformScorer(uint64_t seed) : seed_(seed) {}
  absl::StatusOr<std::vector<std::vector<float>>> KeepProbs(
      std::span<const std::vector<int32_t>> seqs) const override {
    std::mt19937_64 rng(seed_);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    std::vector<std::vector<float>> out;
    for (const auto& s : seqs) {
      out.emplace_back(s.size());
      for (float& p : out.back()) p = u(rng);
    }
    return out;
  }

 private:
  uint64_t seed_;
};

// The training target as a score: 1 - exp(-surprisal) of each piece under tiny-llama given the
// preceding pieces of its chunk. Classifier ids map to tiny-llama ids as id - 1 (both use the
// same sentencepiece model; <unk> 3 -> 0); specials and [NEWi] get 0.5.
class TeacherScorer : public ctx::lingua::ChunkScorer {
 public:
  explicit TeacherScorer(const Model* lm, int32_t spm_size) : lm_(lm), spm_size_(spm_size) {}
  absl::StatusOr<std::vector<std::vector<float>>> KeepProbs(
      std::span<const std::vector<int32_t>> seqs) const override {
    std::vector<std::vector<float>> out;
    for (const auto& s : seqs) {
      std::vector<int32_t> ids;
      std::vector<size_t> pos;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] >= 3 && s[i] <= spm_size_) {
          ids.push_back(s[i] == 3 ? 0 : s[i] - 1);
          pos.push_back(i);
        }
      }
      const auto sur = Surprisals(*lm_, ids);
      out.emplace_back(s.size(), 0.5f);
      for (size_t k = 0; k < sur.size(); ++k)
        out.back()[pos[k]] = static_cast<float>(1.0 - std::exp(-sur[k]));
    }
    return out;
  }

 private:
  const Model* lm_;
  int32_t spm_size_;
};

}  // namespace

int main(int argc, char** argv) {
  const std::string root = CTX_SOURCE_DIR;
  std::vector<std::string> pos;
  ctx::lingua::CompressOptions base;  // reference defaults
  bool diagnostics = false;
  int seeds = 3;
  std::string force_arg, dump_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--force=", 0) == 0) {
      force_arg = a.substr(8);
      for (absl::string_view t : absl::StrSplit(force_arg, ',', absl::SkipEmpty()))
        base.force_tokens.push_back(absl::StrReplaceAll(t, {{"\\n", "\n"}}));
    } else if (a == "--token_to_word=first") {
      base.token_to_word = ctx::lingua::TokenToWord::kFirst;
    } else if (a == "--token_to_word=mean") {
      base.token_to_word = ctx::lingua::TokenToWord::kMean;
    } else if (a.rfind("--dump_probs=", 0) == 0) {
      dump_path = a.substr(13);
    } else if (a == "--force_reserve_digit") {
      base.force_reserve_digit = true;
    } else if (a == "--drop_consecutive") {
      base.drop_consecutive = true;
    } else if (a == "--diagnostics") {
      diagnostics = true;
    } else if (a.rfind("--seeds=", 0) == 0) {
      seeds = std::max(1, std::atoi(a.c_str() + 8));
    } else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    } else {
      pos.push_back(a);
    }
  }
  const std::string docs = pos.size() > 0 ? pos[0] : root + "/tests/data/long_docs";
  const size_t n_ctx = pos.size() > 1 ? static_cast<size_t>(std::atoi(pos[1].c_str())) : 1000;
  const size_t n_cont = pos.size() > 2 ? static_cast<size_t>(std::atoi(pos[2].c_str())) : 128;

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
  TeacherScorer teacher(model->get(), static_cast<int32_t>(lingua->tokenizer->mask_id() - 1));
  ctx::lingua::PromptCompressor oracle_pc(lingua->tokenizer.get(), &teacher, counter->get());

  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(docs, ec)) {
    if (e.path().extension() == ".txt") files.push_back(e.path());  // not index.json
  }
  if (ec) {
    std::fprintf(stderr, "cannot read %s: %s\n", docs.c_str(), ec.message().c_str());
    return 1;
  }
  std::sort(files.begin(), files.end());

  const double rates[] = {0.5, 0.33};
  std::vector<std::string> conds = {"lingua", "random"};
  if (diagnostics) {
    conds.push_back("pipe-rand");
    conds.push_back("oracle");
  }
  const size_t nc = conds.size();
  // [rate][cond]
  std::vector<std::vector<double>> sum_ppl(2, std::vector<double>(nc)), sum_log(sum_ppl),
      sum_tok(sum_ppl), wins(sum_ppl), sum_copy(sum_ppl);
  double full_sum = 0, full_log = 0;
  int n_docs = 0;
  std::printf(
      "options: force_tokens=[%s] token_to_word=%s force_reserve_digit=%d drop_consecutive=%d, "
      "random: %d seeds\n",
      force_arg.c_str(), base.token_to_word == ctx::lingua::TokenToWord::kFirst ? "first" : "mean",
      base.force_reserve_digit ? 1 : 0, base.drop_consecutive ? 1 : 0, seeds);
  std::printf("%-36s %7s", "document: ppl (kept tokens)", "full");
  for (double r : rates)
    for (const auto& c : conds)
      std::printf(" %15s", (c + "@" + (r == 0.5 ? "0.5" : "0.33")).c_str());
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
    if (!dump_path.empty()) {
      const auto pieces = lingua->tokenizer->Tokenize(*ctx_text);
      std::vector<int32_t> seq{ctx::lingua::XlmrTokenizer::kBos};
      for (size_t i = 0; i < pieces.size() && i < 510; ++i) seq.push_back(pieces[i].id);
      seq.push_back(ctx::lingua::XlmrTokenizer::kEos);
      auto probs = lingua->classifier->KeepProbs(std::vector<std::vector<int32_t>>{seq});
      FILE* fp = std::fopen(dump_path.c_str(), "w");
      if (!probs.ok() || fp == nullptr) return 1;
      for (size_t i = 0; i < seq.size(); ++i) std::fprintf(fp, "%d %.7f\n", seq[i], (*probs)[0][i]);
      std::fclose(fp);
      std::printf("wrote %zu positions of %s to %s\n", seq.size(), f.c_str(), dump_path.c_str());
      return 0;
    }
    const double full = ContinuationPpl(**model, all.subspan(0, n_ctx), cont);
    full_sum += full;
    full_log += std::log(full);
    std::string name = std::filesystem::path(f).filename().string().substr(0, 36);
    std::printf("%-36s %7.2f", name.c_str(), full);
    for (size_t ri = 0; ri < 2; ++ri) {
      ctx::lingua::CompressOptions o = base;
      o.rate = rates[ri];
      std::vector<double> ppl(nc, NAN), ntok(nc, 0), copy(nc, 0);
      auto run = [&](const ctx::lingua::PromptCompressor& p, size_t k) -> bool {
        auto c = p.Compress(std::vector<std::string>{*ctx_text}, o);
        if (!c.ok()) {
          std::fprintf(stderr, "%s: %s\n", f.c_str(), c.status().ToString().c_str());
          return false;
        }
        auto kept = (*tok)->Encode(c->compressed_prompt, false);
        if (!kept.ok()) return false;
        ppl[k] = ContinuationPpl(**model, *kept, cont);
        copy[k] = CopyBigramsKept(all.subspan(0, n_ctx), *kept, cont);
        ntok[k] = static_cast<double>(kept->size());
        return true;
      };
      if (!run(pc, 0)) return 1;
      double rsum = 0, rtok = 0, rcopy = 0;
      for (int s = 0; s < seeds; ++s) {
        const auto kept = RandomDrop(**tok, *ctx_text, static_cast<size_t>(ntok[0]),
                                     1234 + 1000 * static_cast<uint64_t>(s) + n_docs);
        rsum += ContinuationPpl(**model, kept, cont);
        rtok += static_cast<double>(kept.size());
        rcopy += CopyBigramsKept(all.subspan(0, n_ctx), kept, cont) / seeds;
      }
      ppl[1] = rsum / seeds;
      copy[1] = rcopy;
      ntok[1] = rtok / seeds;
      if (diagnostics) {
        UniformScorer uni(77 + static_cast<uint64_t>(n_docs));
        ctx::lingua::PromptCompressor rand_pc(lingua->tokenizer.get(), &uni, counter->get());
        if (!run(rand_pc, 2) || !run(oracle_pc, 3)) return 1;
      }
      for (size_t k = 0; k < nc; ++k) {
        sum_ppl[ri][k] += ppl[k];
        sum_log[ri][k] += std::log(ppl[k]);
        sum_tok[ri][k] += ntok[k];
        sum_copy[ri][k] += copy[k];
        wins[ri][k] += k != 1 && ppl[k] < ppl[1];
        std::printf(" %8.2f (%4.0f)", ppl[k], ntok[k]);
      }
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
  for (size_t ri = 0; ri < 2; ++ri) {
    std::printf("\nrate %.2f\n", rates[ri]);
    std::printf(
        "| condition | mean PPL | geo-mean PPL | mean kept tokens | docs beating random |"
        " copy bigrams kept |\n| --- | ---: | ---: | ---: | ---: | ---: |\n");
    std::printf("| full | %.2f | %.2f | %zu | | 100%% |\n", full_sum / n_docs,
                std::exp(full_log / n_docs), n_ctx);
    for (size_t k = 0; k < nc; ++k) {
      const std::string won =
          k == 1 ? ""
                 : std::to_string(static_cast<int>(wins[ri][k])) + "/" + std::to_string(n_docs);
      std::printf("| %s | %.2f | %.2f | %.0f | %s | %.0f%% |\n", conds[k].c_str(),
                  sum_ppl[ri][k] / n_docs, std::exp(sum_log[ri][k] / n_docs),
                  sum_tok[ri][k] / n_docs, won.c_str(), 100.0 * sum_copy[ri][k] / n_docs);
    }
  }
  return 0;
}
