// LLMLingua-2 prompt compression (reference: microsoft/LLMLingua 0.2.2,
// PromptCompressor.compress_prompt_llmlingua2; digest /work/shared/reference/llmlingua2.md §1).
//
//   contexts --[force tokens -> "[NEWi]"]--> chunks of <= 511 pieces ending at end tokens
//     --classifier--> p(keep) per piece --merge--> words (mean/first, forced = 1)
//     --[context filter when several contexts]--> per-chunk threshold
//        T = np.percentile(word probs repeated by token count, int(100 (1 - rate) + 1))
//     --> keep words with p > T (or p == T == 1) --> text
//
// Token counts (rate, target_token, reported counts) use a pluggable TokenCounter.
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/lingua/chunk_scorer.h"
#include "common/lingua/token_counter.h"
#include "common/lingua/word_merge.h"
#include "common/lingua/xlmr_tokenizer.h"

namespace ctx::lingua {

// Classifier input specials. kTrainConsistent: <s> pieces </s> (how the model was trained).
// kReference: <unk> pieces <unk>, what the reference feeds XLM-R because it builds its dataset
// with BERT's "[CLS]"/"[SEP]" strings (LLMLingua issue #181, PR #182 unmerged).
enum class SpecialTokenMode { kTrainConsistent, kReference };

// What the per-word token count (the threshold's weight) is taken of.
// kWordText: the word as it appears in text (leading space dropped): what the target model pays.
// kStoredWordString: the reference's stored word string, which keeps XLM-R's "▁" (U+2581)
// prefix and so overcounts each word (reference quirk).
enum class WordCountMode { kWordText, kStoredWordString };

struct CompressorConfig {
  int max_seq_len = 512;              // classifier input incl. specials (reference: 512)
  size_t max_input_bytes = 4u << 20;  // all contexts together
  SpecialTokenMode special_tokens = SpecialTokenMode::kTrainConsistent;
  WordCountMode word_count = WordCountMode::kWordText;

  // Both reference quirks on (what LLMLingua 0.2.2 does, up to the counting tokenizer).
  static CompressorConfig ReferenceCompat() {
    CompressorConfig c;
    c.special_tokens = SpecialTokenMode::kReference;
    c.word_count = WordCountMode::kStoredWordString;
    return c;
  }
};

// Request parameters; defaults are those of the reference's compress_prompt.
struct CompressOptions {
  double rate = 0.5;          // (0, 1]
  int64_t target_token = -1;  // > 0 overrides rate (global rate = target / origin tokens)
  bool use_context_level_filter = true;  // only applies with several contexts
  bool use_token_level_filter = true;
  int64_t target_context = -1;
  double context_level_rate = 1.0;
  int64_t context_level_target_token = -1;
  std::vector<int> force_context_ids;
  bool return_word_label = false;
  std::string word_sep = "\t\t|\t\t";
  std::string label_sep = " ";
  TokenToWord token_to_word = TokenToWord::kMean;
  std::vector<std::string> force_tokens;  // at most 100
  bool force_reserve_digit = false;
  bool drop_consecutive = false;
  std::vector<std::string> chunk_end_tokens = {".", "\n"};
};

struct WordLabel {
  std::string word;  // reference word string without "▁", force tokens restored
  int label = 0;     // 1 = kept
  double prob = 0;   // word probability used for the decision (1 for forced)
};

struct CompressResult {
  std::string compressed_prompt;  // contexts joined with "\n\n"
  std::vector<std::string> compressed_prompt_list;
  int64_t origin_tokens = 0;
  int64_t compressed_tokens = 0;
  double ratio_value = 1.0;                // origin / compressed (1 when compressed == 0)
  std::string ratio;                       // "3.3x"
  std::string rate;                        // "30.6%"
  std::string saving;                      // ", Saving $X.X in GPT-4."
  std::string fn_labeled_original_prompt;  // return_word_label: "word<sep>label" joined
  std::vector<WordLabel> word_labels;      // return_word_label
  int64_t num_chunks = 0;
  int64_t num_pieces = 0;  // classifier positions scored (specials included)
};

class PromptCompressor {
 public:
  // All pointers must outlive the compressor.
  PromptCompressor(const XlmrTokenizer* tokenizer, const ChunkScorer* scorer,
                   const TokenCounter* counter, CompressorConfig config = {});

  // InvalidArgument for: no contexts, an empty context, invalid UTF-8, input over
  // max_input_bytes, rate outside (0, 1], context_level_rate outside (0, 1], more force tokens
  // than [NEWi] slots.
  absl::StatusOr<CompressResult> Compress(std::span<const std::string> contexts,
                                          const CompressOptions& options) const;

  // --- steps, public for tests ---
  // force_tokens -> ForceTokens (a token that is not exactly one piece gets "[NEWi]", i = its
  // index in the list).
  ForceTokens BuildForceTokens(std::span<const std::string> force_tokens) const;
  // Reference __chunk_context: pieces[st..ed] with ed = the last end-token piece within
  // st+1..st+510, else st+510 (so <= 511 pieces); each chunk back to a string.
  std::vector<std::string> ChunkContext(absl::string_view text,
                                        const std::set<std::string>& end_tokens) const;
  // Classifier ids of one chunk string: specials around the pieces, truncated to max_seq_len
  // (a 511-piece chunk loses its trailing special, as in the reference).
  std::vector<int32_t> ChunkIds(const std::vector<Piece>& pieces) const;

  const CompressorConfig& config() const { return config_; }

 private:
  struct ChunkWords {
    std::vector<MergedWord> words;
  };
  absl::StatusOr<std::vector<ChunkWords>> ScoreChunks(const std::vector<std::string>& chunks,
                                                      const ForceTokens& force,
                                                      const CompressOptions& options,
                                                      int64_t* num_pieces) const;
  size_t WordTokenCount(const MergedWord& w) const;

  const XlmrTokenizer* tok_;
  const ChunkScorer* scorer_;
  const TokenCounter* counter_;
  CompressorConfig config_;
};

// Validates UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool IsValidUtf8(absl::string_view s);

}  // namespace ctx::lingua
