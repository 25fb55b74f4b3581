// CompressRequest -> lingua::CompressOptions: proto3 zero values mean the reference defaults,
// bad values are INVALID_ARGUMENT naming the field.
#include <catch2/catch.hpp>
#include <cmath>

#include "services/compressor/compressor_service.h"

namespace ctx::compressor {
namespace {

namespace pb = ctxstream::v1;

pb::CompressRequest OneContext() {
  pb::CompressRequest r;
  r.add_contexts("Some text.");
  return r;
}

}  // namespace

TEST_CASE("request fields map to CompressOptions, zero values are the defaults",
          "[compressor][options]") {
  pb::CompressRequest r = OneContext();
  auto o = RequestToOptions(r);
  REQUIRE(o.ok());
  CHECK(o->rate == 0.5);
  CHECK(o->target_token == -1);
  CHECK(o->token_to_word == lingua::TokenToWord::kMean);
  CHECK(o->context_level_rate == 1.0);
  CHECK(o->target_context == -1);
  CHECK(o->context_level_target_token == -1);
  CHECK(o->chunk_end_tokens == std::vector<std::string>{".", "\n"});
  CHECK_FALSE(o->return_word_label);
  CHECK_FALSE(o->use_context_level_filter);

  r.add_contexts("More.");
  r.set_rate(0.25f);
  r.set_target_token(40);
  r.add_force_tokens("\n");
  r.add_force_tokens("?");
  r.set_force_reserve_digit(true);
  r.set_drop_consecutive(true);
  r.set_use_context_level_filter(true);
  r.set_token_to_word("first");
  r.set_return_word_probs(true);
  r.set_context_level_rate(0.5f);
  r.set_context_level_target_token(30);
  r.set_target_context(1);
  r.add_force_context_ids(1);
  r.add_chunk_end_tokens(";");
  o = RequestToOptions(r);
  REQUIRE(o.ok());
  CHECK(o->rate == 0.25);
  CHECK(o->target_token == 40);
  CHECK(o->force_tokens == std::vector<std::string>{"\n", "?"});
  CHECK(o->force_reserve_digit);
  CHECK(o->drop_consecutive);
  CHECK(o->use_context_level_filter);
  CHECK(o->token_to_word == lingua::TokenToWord::kFirst);
  CHECK(o->return_word_label);  // word probs come with the labels
  CHECK(o->context_level_rate == 0.5);
  CHECK(o->context_level_target_token == 30);
  CHECK(o->target_context == 1);
  CHECK(o->force_context_ids == std::vector<int>{1});
  CHECK(o->chunk_end_tokens == std::vector<std::string>{";"});
}

TEST_CASE("bad request fields are INVALID_ARGUMENT naming the field", "[compressor][options]") {
  auto expect = [](const pb::CompressRequest& r, const std::string& needle) {
    auto o = RequestToOptions(r);
    REQUIRE_FALSE(o.ok());
    CHECK(o.status().code() == absl::StatusCode::kInvalidArgument);
    INFO(o.status().message());
    CHECK(std::string(o.status().message()).find(needle) != std::string::npos);
  };
  expect(pb::CompressRequest{}, "contexts is empty");
  pb::CompressRequest r = OneContext();
  r.add_contexts("");
  expect(r, "contexts[1] is empty");
  for (float bad : {-0.1f, 1.5f, std::nanf("")}) {
    r = OneContext();
    r.set_rate(bad);
    expect(r, "outside (0, 1]");
  }
  r = OneContext();
  r.set_token_to_word("max");
  expect(r, "token_to_word \"max\"");
  r = OneContext();
  r.set_context_level_rate(2.0f);
  expect(r, "context_level_rate");
  r = OneContext();
  r.add_force_context_ids(3);
  expect(r, "force_context_ids has 3");
  r = OneContext();
  r.set_target_context(-2);
  expect(r, "target_context");
}

}  // namespace ctx::compressor
