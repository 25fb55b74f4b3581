#include "common/lingua/prompt_compressor.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/lingua/percentile.h"

namespace ctx::lingua {
namespace {

std::string Format1(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// Words of uncompressed text for return_word_label: the reference's regex
// \b\w+\b | one of < > = / ! @ # $ % ^ & * ( ) ? " : { } | \ ` ~ ; _ + -
// (\w approximated as ASCII alphanumerics, '_' and every non-ASCII byte).
std::vector<std::string> SplitWordsForLabels(absl::string_view s) {
  constexpr absl::string_view kSymbols = "<>=/!@#$%^&*()?\":{}|\\`~;_+-";
  auto is_word = [](unsigned char ch) {
    return ch >= 0x80 || ch == '_' || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
           (ch >= 'A' && ch <= 'Z');
  };
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const auto ch = static_cast<unsigned char>(s[i]);
    if (is_word(ch)) {
      size_t j = i;
      while (j < s.size() && is_word(static_cast<unsigned char>(s[j]))) ++j;
      out.emplace_back(s.substr(i, j - i));
      i = j;
    } else {
      if (kSymbols.find(s[i]) != absl::string_view::npos) out.emplace_back(1, s[i]);
      ++i;
    }
  }
  return out;
}

absl::Status Invalid(absl::string_view msg) { return absl::InvalidArgumentError(msg); }

}  // namespace

bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return false;
    }
    i += len;
  }
  return true;
}

PromptCompressor::PromptCompressor(const XlmrTokenizer* tokenizer, const ChunkScorer* scorer,
                                   const TokenCounter* counter, CompressorConfig config)
    : tok_(tokenizer), scorer_(scorer), counter_(counter), config_(config) {}

ForceTokens PromptCompressor::BuildForceTokens(std::span<const std::string> force_tokens) const {
  ForceTokens f;
  f.tokens.assign(force_tokens.begin(), force_tokens.end());
  for (size_t i = 0; i < force_tokens.size(); ++i) {
    const std::string& t = force_tokens[i];
    if (tok_->Tokenize(t).size() == 1) continue;
    // Python dict semantics: a repeated token keeps its first slot but takes the later value.
    const std::string sub = XlmrTokenizer::AddedToken(static_cast<int>(i));
    auto it = std::find_if(f.substitutions.begin(), f.substitutions.end(),
                           [&](const auto& kv) { return kv.first == t; });
    if (it != f.substitutions.end()) {
      it->second = sub;
    } else {
      f.substitutions.emplace_back(t, sub);
    }
  }
  return f;
}

std::vector<std::string> PromptCompressor::ChunkContext(
    absl::string_view text, const std::set<std::string>& end_tokens) const {
  const std::vector<Piece> pieces = tok_->Tokenize(text);
  std::vector<std::string> strs;
  strs.reserve(pieces.size());
  for (const Piece& p : pieces) strs.push_back(p.text);
  const size_t n = strs.size();
  const size_t max_len = static_cast<size_t>(config_.max_seq_len - 2);
  std::vector<std::string> chunks;
  size_t st = 0;
  while (st < n) {
    if (st + max_len > n - 1) {
      chunks.push_back(tok_->PiecesToString(std::span(strs).subspan(st, n - st)));
      break;
    }
    size_t ed = st + max_len;
    for (size_t j = 0; j < ed - st; ++j) {
      if (end_tokens.count(strs[ed - j])) {
        ed -= j;
        break;
      }
    }
    chunks.push_back(tok_->PiecesToString(std::span(strs).subspan(st, ed + 1 - st)));
    st = ed + 1;
  }
  return chunks;
}

std::vector<int32_t> PromptCompressor::ChunkIds(const std::vector<Piece>& pieces) const {
  const bool ref = config_.special_tokens == SpecialTokenMode::kReference;
  std::vector<int32_t> ids;
  ids.reserve(pieces.size() + 2);
  ids.push_back(ref ? XlmrTokenizer::kUnk : XlmrTokenizer::kBos);
  for (const Piece& p : pieces) ids.push_back(p.id);
  ids.push_back(ref ? XlmrTokenizer::kUnk : XlmrTokenizer::kEos);
  if (ids.size() > static_cast<size_t>(config_.max_seq_len)) {
    ids.resize(static_cast<size_t>(config_.max_seq_len));
  }
  return ids;
}

absl::StatusOr<std::vector<PromptCompressor::ChunkWords>> PromptCompressor::ScoreChunks(
    const std::vector<std::string>& chunks, const ForceTokens& force,
    const CompressOptions& options, int64_t* num_pieces) const {
  std::vector<std::vector<Piece>> pieces(chunks.size());
  std::vector<std::vector<int32_t>> seqs(chunks.size());
  for (size_t c = 0; c < chunks.size(); ++c) {
    pieces[c] = tok_->Tokenize(chunks[c]);
    seqs[c] = ChunkIds(pieces[c]);
    *num_pieces += static_cast<int64_t>(seqs[c].size());
  }
  auto probs = scorer_->KeepProbs(seqs);
  if (!probs.ok()) return probs.status();
  if (probs->size() != seqs.size()) return absl::InternalError("scorer returned wrong batch size");
  const bool ref = config_.special_tokens == SpecialTokenMode::kReference;
  std::vector<ChunkWords> out(chunks.size());
  for (size_t c = 0; c < chunks.size(); ++c) {
    // Piece strings of the classifier positions (what convert_ids_to_tokens gives).
    std::vector<std::string> strs;
    strs.reserve(seqs[c].size());
    strs.push_back(ref ? "<unk>" : "<s>");
    for (const Piece& p : pieces[c]) strs.push_back(p.text);
    strs.push_back(ref ? "<unk>" : "</s>");
    strs.resize(std::min(strs.size(), seqs[c].size()));
    const auto& pr = (*probs)[c];
    if (pr.size() != strs.size()) return absl::InternalError("scorer returned wrong length");
    out[c].words = MergeTokensToWords(strs, pr, force, options.force_reserve_digit, *tok_);
  }
  return out;
}

size_t PromptCompressor::WordTokenCount(const MergedWord& w) const {
  if (config_.word_count == WordCountMode::kStoredWordString) return counter_->Count(w.stored);
  absl::string_view t = w.text;
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  if (!t.empty() && (t.front() == '\n' || t.front() == '\t' || t.front() == '\r')) {
    // A newline/tab word (its own word since the whitespace-piece rule) costs what it costs
    // after a word; counted alone, a sentencepiece counter adds its dummy "▁" (2 for "\n").
    const size_t with = counter_->Count(absl::StrCat("a", t)), alone = counter_->Count("a");
    return with > alone ? with - alone : 0;
  }
  return counter_->Count(t);
}

absl::StatusOr<CompressResult> PromptCompressor::Compress(std::span<const std::string> contexts,
                                                          const CompressOptions& o) const {
  // ---- validation (the reference crashes or divides by zero on most of these) ----
  if (config_.max_seq_len < 3) {
    return absl::FailedPreconditionError("CompressorConfig::max_seq_len must be at least 3");
  }
  if (contexts.empty()) return Invalid("no context given: pass at least one non-empty context");
  size_t total_bytes = 0;
  for (size_t i = 0; i < contexts.size(); ++i) {
    if (contexts[i].empty()) return Invalid(absl::StrCat("context ", i, " is empty"));
    if (!IsValidUtf8(contexts[i]))
      return Invalid(absl::StrCat("context ", i, " is not valid UTF-8"));
    total_bytes += contexts[i].size();
  }
  if (total_bytes > config_.max_input_bytes) {
    return Invalid(
        absl::StrCat("input is ", total_bytes, " bytes; the limit is ", config_.max_input_bytes));
  }
  if (!(o.rate > 0.0 && o.rate <= 1.0)) {
    return Invalid(
        absl::StrCat("rate ", o.rate, " outside (0, 1]: it is the fraction of tokens to keep"));
  }
  if (!(o.context_level_rate > 0.0 && o.context_level_rate <= 1.0)) {
    return Invalid(absl::StrCat("context_level_rate ", o.context_level_rate, " outside (0, 1]"));
  }
  if (o.force_tokens.size() > static_cast<size_t>(tok_->num_added_tokens())) {
    return Invalid(absl::StrCat(o.force_tokens.size(), " force tokens; at most ",
                                tok_->num_added_tokens(), " are supported"));
  }
  for (const std::string& t : o.force_tokens) {
    if (t.empty() || !IsValidUtf8(t))
      return Invalid("force tokens must be non-empty UTF-8 strings");
  }

  const ForceTokens force = BuildForceTokens(o.force_tokens);
  std::set<std::string> end_tokens(o.chunk_end_tokens.begin(), o.chunk_end_tokens.end());
  for (const std::string& t : o.chunk_end_tokens)
    for (const auto& [ori, sub] : force.substitutions)
      if (ori == t) end_tokens.insert(sub);

  CompressResult res;
  const size_t n_ctx = contexts.size();
  int64_t n_original = 0;
  std::vector<std::vector<std::string>> chunked(n_ctx);
  for (size_t i = 0; i < n_ctx; ++i) {
    n_original += static_cast<int64_t>(counter_->Count(contexts[i]));
    chunked[i] = ChunkContext(force.SubstituteAll(contexts[i]), end_tokens);
  }

  // Word scores for every chunk, computed at most once (the reference runs the model twice
  // when the context filter is on; both runs give the same probabilities).
  std::vector<std::string> flat;
  std::vector<size_t> first_chunk(n_ctx + 1, 0);
  for (size_t i = 0; i < n_ctx; ++i) {
    first_chunk[i] = flat.size();
    flat.insert(flat.end(), chunked[i].begin(), chunked[i].end());
  }
  first_chunk[n_ctx] = flat.size();
  res.num_chunks = static_cast<int64_t>(flat.size());
  std::vector<ChunkWords> scored;
  bool have_scores = false;
  auto ensure_scores = [&]() -> absl::Status {
    if (have_scores) return absl::OkStatus();
    auto s = ScoreChunks(flat, force, o, &res.num_pieces);
    if (!s.ok()) return s.status();
    scored = *std::move(s);
    have_scores = true;
    return absl::OkStatus();
  };

  double rate = o.rate;
  std::vector<bool> kept_context(n_ctx, true);
  std::vector<std::vector<std::string>> dropped_words(n_ctx);  // context filter, for labels
  const bool context_filter = o.use_context_level_filter && n_ctx > 1;
  if (context_filter) {
    double clr = o.context_level_rate;
    int64_t cltt = o.context_level_target_token;
    if (o.target_context <= 0 && clr >= 1.0 && cltt <= 0) {
      if (o.target_token < 0 && rate < 1.0)
        clr = o.use_token_level_filter ? (rate + 1.0) / 2 : rate;
      if (o.target_token >= 0)
        cltt = o.use_token_level_filter ? o.target_token * 2 : o.target_token;
    }
    if (o.target_context >= 0) {
      clr = std::min(static_cast<double>(o.target_context) / static_cast<double>(n_ctx), 1.0);
    }
    if (cltt >= 0) {
      if (n_original == 0) return Invalid("contexts have no tokens; cannot apply a token target");
      clr = std::min(static_cast<double>(cltt) / static_cast<double>(n_original), 1.0);
    }
    const int q = ContextLevelPercentile(clr);
    if (q < 0 || q > 100) return Invalid(absl::StrCat("context-level rate ", clr, " out of range"));
    if (auto st = ensure_scores(); !st.ok()) return st;
    std::vector<double> scores(n_ctx, 0.0);
    for (size_t i = 0; i < n_ctx; ++i) {
      double sum = 0;
      size_t count = 0;
      for (size_t c = first_chunk[i]; c < first_chunk[i + 1]; ++c) {
        for (const MergedWord& w : scored[c].words) {
          sum += WordProbability(w.probs_no_force, o.token_to_word);
          ++count;
          dropped_words[i].emplace_back(StripLeadingMetaspace(w.stored));
        }
      }
      scores[i] = count ? sum / static_cast<double>(count) : 0.0;  // reference: ZeroDivisionError
    }
    const double thr = NumpyPercentile(scores, q);
    int64_t n_reserved = 0;
    for (size_t i = 0; i < n_ctx; ++i) {
      const bool forced = std::find(o.force_context_ids.begin(), o.force_context_ids.end(),
                                    static_cast<int>(i)) != o.force_context_ids.end();
      kept_context[i] = scores[i] >= thr || forced;
      if (kept_context[i]) {
        for (const std::string& c : chunked[i])
          n_reserved += static_cast<int64_t>(counter_->Count(c));
      }
    }
    if (o.target_token >= 0) {
      rate =
          n_reserved > 0
              ? std::min(static_cast<double>(o.target_token) / static_cast<double>(n_reserved), 1.0)
              : 1.0;
    }
  } else if (o.target_token > 0) {
    if (n_original == 0) return Invalid("contexts have no tokens; cannot apply target_token");
    rate = std::min(static_cast<double>(o.target_token) / static_cast<double>(n_original), 1.0);
  }
  const double reduce_rate = o.use_token_level_filter ? std::max(0.0, 1.0 - rate) : 0.0;

  // ---- token level, per kept context ----
  std::vector<WordLabel> labels;
  for (size_t i = 0; i < n_ctx; ++i) {
    if (!kept_context[i]) {
      for (std::string& w : dropped_words[i]) labels.push_back({std::move(w), 0, 0.0});
      continue;
    }
    std::string compressed;
    if (reduce_rate <= 0.0) {  // no model call: the chunks as they are, every word label 1
      for (const std::string& c : chunked[i]) {
        const std::string restored = force.RestoreAll(c);
        compressed += restored;
        if (o.return_word_label) {
          for (std::string& w : SplitWordsForLabels(restored))
            labels.push_back({std::move(w), 1, 1.0});
        }
      }
      res.compressed_prompt_list.push_back(std::move(compressed));
      continue;
    }
    if (auto st = ensure_scores(); !st.ok()) return st;
    const int q = TokenLevelPercentile(reduce_rate);
    if (q > 100) return Invalid(absl::StrCat("rate ", rate, " leaves nothing to keep"));
    for (size_t c = first_chunk[i]; c < first_chunk[i + 1]; ++c) {
      const std::vector<MergedWord>& words = scored[c].words;
      if (words.empty()) continue;
      std::vector<double> probs(words.size());
      for (size_t k = 0; k < words.size(); ++k)
        probs[k] = WordProbability(words[k].probs, o.token_to_word);
      if (o.drop_consecutive) {
        const double pre_thr = NumpyPercentile(probs, DropConsecutivePercentile(reduce_rate));
        bool between = false;
        const std::string* prev = nullptr;
        for (size_t k = 0; k < words.size(); ++k) {
          if (force.IsForceToken(words[k].stored)) {
            if (between) {
              between = false;
            } else if (prev != nullptr && words[k].stored == *prev) {
              probs[k] = 0.0;
            }
            prev = &words[k].stored;
          } else {
            between |= probs[k] > pre_thr;
          }
        }
      }
      std::vector<double> expanded;
      for (size_t k = 0; k < words.size(); ++k)
        expanded.insert(expanded.end(), WordTokenCount(words[k]), probs[k]);
      // A chunk whose words count zero tokens: threshold over the unweighted word probabilities.
      const double thr = NumpyPercentile(expanded.empty() ? probs : expanded, q);
      std::string keep;
      const std::string* last_kept = nullptr;
      for (size_t k = 0; k < words.size(); ++k) {
        int label = 0;
        if (probs[k] > thr || (thr == 1.0 && probs[k] == 1.0)) {
          if (!(o.drop_consecutive && force.IsForceToken(words[k].stored) && last_kept != nullptr &&
                *last_kept == words[k].stored)) {
            AppendKeptWord(words[k], keep);
            last_kept = &words[k].stored;
            label = 1;
          }
        }
        if (o.return_word_label) {
          labels.push_back({std::string(StripLeadingMetaspace(words[k].stored)), label, probs[k]});
        }
      }
      // Metaspace decoder: the first item loses its leading space.
      if (!keep.empty() && keep[0] == ' ') keep.erase(0, 1);
      compressed += keep;
    }
    res.compressed_prompt_list.push_back(std::move(compressed));
  }

  res.compressed_prompt = absl::StrJoin(res.compressed_prompt_list, "\n\n");
  res.origin_tokens = n_original;
  for (const std::string& c : res.compressed_prompt_list)
    res.compressed_tokens += static_cast<int64_t>(counter_->Count(c));
  res.ratio_value = res.compressed_tokens == 0 ? 1.0
                                               : static_cast<double>(n_original) /
                                                     static_cast<double>(res.compressed_tokens);
  res.ratio = Format1("%.1fx", res.ratio_value);
  res.rate = Format1("%.1f%%", 1.0 / res.ratio_value * 100.0);
  res.saving = Format1(", Saving $%.1f in GPT-4.",
                       static_cast<double>(n_original - res.compressed_tokens) * 0.06 / 1000.0);
  if (o.return_word_label) {
    std::vector<std::string> items;
    items.reserve(labels.size());
    for (const WordLabel& w : labels) items.push_back(absl::StrCat(w.word, o.label_sep, w.label));
    res.fn_labeled_original_prompt = absl::StrJoin(items, o.word_sep);
    res.word_labels = std::move(labels);
  }
  return res;
}

}  // namespace ctx::lingua
