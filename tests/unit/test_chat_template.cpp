// test_chat_template.cpp: `--chat` templates (src/infer/chat_template.h): none is the prompt as
// is; lwm is LWM's text (expected strings written out from LWM's format, spaces included) with
// the tokenizer's BOS in front and its EOS as the stop token; unknown names list the known ones.
#include <catch2/catch.hpp>

#include "src/common/input_error.h"
#include "src/data/passkey_tokenizer.h"
#include "src/data/tokenizer.h"
#include "src/infer/chat_template.h"

using namespace rw;

namespace {

// Bytes with LLaMA's special ids (BOS 1, EOS 2): stands in for the SentencePiece vocabulary.
struct LlamaLikeTokenizer : data::ByteTokenizer {
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
};

std::vector<int32_t> bytes_of(const std::string& text) { return data::ByteTokenizer().encode(text); }

}  // namespace

TEST_CASE("chat template lwm: LWM's text, BOS first, EOS stops", "[chat]") {
  const std::string expected = "You are a helpful assistant. USER: What is 2+2? ASSISTANT:";
  CHECK(infer::chat_prompt_text("lwm", "What is 2+2?") == expected);
  const infer::ChatPrompt p = infer::apply_chat_template("lwm", "What is 2+2?", LlamaLikeTokenizer());
  std::vector<int32_t> want = {1};
  for (int32_t id : bytes_of(expected)) want.push_back(id);
  CHECK(p.ids == want);
  CHECK(p.stop_token == 2);
  // A tokenizer without special tokens (bytes): the text only, no stop token.
  const infer::ChatPrompt b = infer::apply_chat_template("lwm", "What is 2+2?", data::ByteTokenizer());
  CHECK(b.ids == bytes_of(expected));
  CHECK(b.stop_token == -1);
}

TEST_CASE("chat template none: the prompt's tokens as they are", "[chat]") {
  const std::string prompt = "  a prompt\nwith lines ";
  const infer::ChatPrompt p = infer::apply_chat_template("none", prompt, LlamaLikeTokenizer());
  CHECK(p.ids == bytes_of(prompt));
  CHECK(p.stop_token == 2);
  // The passkey language: the demo model's prompt, stopping at <eos>.
  const data::PasskeyTokenizer passkey(64);
  const infer::ChatPrompt k = infer::apply_chat_template("none", "<bos> w40 w50 <ask> n3 <is>", passkey);
  CHECK(k.ids == std::vector<int32_t>{10, 40, 50, 13, 19, 14});
  CHECK(k.stop_token == 11);
}

TEST_CASE("an unknown chat template lists the known ones", "[chat]") {
  CHECK_THROWS_AS(infer::apply_chat_template("llama3", "hi", data::ByteTokenizer()), InputError);
  CHECK_THROWS_WITH(infer::apply_chat_template("llama3", "hi", data::ByteTokenizer()),
                    Catch::Contains("'llama3'") && Catch::Contains("none, lwm"));
}
