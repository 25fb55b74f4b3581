// Builds a sentencepiece model from an HF `tokenizer.json` of the XLM-R kind (Unigram model +
// Precompiled normaliser + Metaspace), so the official LLMLingua-2 checkpoint, which ships no
// sentencepiece.bpe.model, can be tokenised with libsentencepiece.
//
// HF's XLMRobertaConverter wrote vocab = [<s>, <pad>, </s>, <unk>] + spm pieces[3:] + [<mask>]
// (fairseq order, [piece, score] pairs); we invert that: spm pieces = <unk>, <s>, </s>,
// vocab[4 : -1]. The precompiled charsmap (base64) becomes normalizer_spec.precompiled_charsmap.
// The ModelProto is written directly in protobuf wire format (Debian ships no
// sentencepiece_model.pb.h); field numbers are those of sentencepiece_model.proto.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctx::lingua {

// Serialized sentencepiece ModelProto for the tokenizer.json text.
absl::StatusOr<std::string> SpmModelProtoFromTokenizerJson(absl::string_view json_text);

// Standard base64 (with or without padding); InvalidArgument on other characters.
absl::StatusOr<std::string> Base64Decode(absl::string_view in);

}  // namespace ctx::lingua
