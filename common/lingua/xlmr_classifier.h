// XLM-RoBERTa token classifier (HF XLMRobertaForTokenClassification), fp32 on the CPU.
//
// Post-LN BERT encoder:
//   x = LN(W_word[id] + W_pos[pos] + W_type[0]),  pos = cumsum(id != pad) * (id != pad) + pad
//   per layer: h = LN(x + Attn(x) W_o + b_o);  x = LN(h + GELU_erf(h W_1 + b_1) W_2 + b_2)
//   logits = x W_cls + b_cls   (label 1 = keep)
// Any F32/F16/BF16 checkpoint is widened to fp32 at load time. Products go through
// tensor/gemm.h (own AVX-512 kernel on packed weights, OpenBLAS elsewhere).
// Forward() is const and thread-safe; each call allocates its own scratch.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/lingua/xlmr_config.h"
#include "common/tensor/gemm.h"

namespace ctx::lingua {

// A right- (or arbitrarily) padded batch: ids/mask are [batch, seq_len] row-major.
struct EncoderBatch {
  int64_t batch = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;  // 1 = real token (attended key), 0 = padding

  // Pads `seqs` on the right with `pad_id` (mask 0) to the longest sequence.
  static EncoderBatch Pad(std::span<const std::vector<int32_t>> seqs, int32_t pad_id);
};

struct EncoderOutput {
  std::vector<float> logits;  // [batch, seq_len, num_labels]
  // Only when requested: L+1 tensors [batch, seq_len, H]; 0 = embedding LayerNorm output,
  // i = output of layer i (HF output_hidden_states).
  std::vector<std::vector<float>> hidden_states;
};

class XlmrClassifier {
 public:
  // Loads config.json + model.safetensors (or shards) from `model_dir`.
  // `num_added_tokens` [NEWi] ids follow <mask> (spm_size + 2 + i); when the checkpoint has no
  // rows for them (vocab_size == base), they get the mean word-embedding row (documented in
  // README: a deterministic stand-in for HF resize_token_embeddings' mean init).
  static absl::StatusOr<std::unique_ptr<XlmrClassifier>> Load(const std::string& model_dir,
                                                              int64_t added_token_base = -1,
                                                              int64_t num_added_tokens = 0);

  const XlmrConfig& config() const { return config_; }
  // Number of usable ids (checkpoint rows plus synthesized [NEWi] rows).
  int64_t num_ids() const { return num_ids_; }
  // Longest sequence the position table allows (max_position_embeddings - pad - 1 = 512).
  int64_t max_seq_len() const { return config_.max_position_embeddings - config_.pad_token_id - 1; }

  absl::StatusOr<EncoderOutput> Forward(const EncoderBatch& batch, bool want_hidden = false) const;

  // p(keep) = softmax(logits)[..., 1] for every position of every sequence (each output
  // vector has the sequence's length). Runs the sequences as one padded batch.
  absl::StatusOr<std::vector<std::vector<float>>> KeepProbs(
      std::span<const std::vector<int32_t>> seqs) const;

 private:
  // Weight matrices are packed for tensor::MatMulPacked at load (shapes as [out, in]).
  struct Layer {
    tensor::PackedMatrix w_qkv;       // [3H, H]  (query; key; value rows)
    std::vector<float> b_qkv;         // [3H]
    tensor::PackedMatrix w_o;         // [H, H]
    std::vector<float> b_o;           // [H]
    std::vector<float> ln1_g, ln1_b;  // [H]
    tensor::PackedMatrix w_1;         // [I, H]
    std::vector<float> b_1;           // [I]
    tensor::PackedMatrix w_2;         // [H, I]
    std::vector<float> b_2;           // [H]
    std::vector<float> ln2_g, ln2_b;  // [H]
  };
  XlmrConfig config_;
  int64_t num_ids_ = 0;
  std::vector<float> word_emb_;   // [num_ids, H]
  std::vector<float> pos_emb_;    // [max_pos, H]
  std::vector<float> type_emb0_;  // [H] (token type row 0)
  std::vector<float> emb_ln_g_, emb_ln_b_;
  std::vector<Layer> layers_;
  tensor::PackedMatrix cls_w_;  // [2, H]
  std::vector<float> cls_b_;    // [2]
};

}  // namespace ctx::lingua
