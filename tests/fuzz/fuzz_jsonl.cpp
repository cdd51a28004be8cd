// fuzz_jsonl.cpp: the .jsonl reader of `prepare` (src/data/tokenizer.cpp, simdjson), fed as
// prepare feeds it: the input split into lines, blank lines skipped, each line's "text" field
// tokenized by the byte tokenizer. Checks beyond "no crash":
//   - a refused line's message names the line (file:line), as prepare's error promises;
//   - an accepted line's text round-trips through the byte tokenizer;
//   - differential (when nlohmann/json is installed): a line simdjson accepts parses with
//     nlohmann to an object whose "text" is the same string, and a line nlohmann accepts as such
//     an object is accepted by us unless simdjson's documented limits (nesting depth 1024,
//     numbers outside the double range) refuse it, or the line holds a NUL byte (nlohmann's
//     parser takes it for the end of the input: "{...}\0garbage" is valid to it, not to us).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "src/common/input_error.h"
#include "src/data/tokenizer.h"

#if __has_include(<nlohmann/json.hpp>)
#include <nlohmann/json.hpp>
#define RW_FUZZ_DIFFERENTIAL 1
#endif

namespace {

[[noreturn]] void finding(const char* what, const std::string& line) {
  std::fprintf(stderr, "fuzz_jsonl: %s\n  line (%zu bytes): %.300s\n", what, line.size(), line.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) { return 0; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string line;
  const rw::data::ByteTokenizer bytes;
  for (long long n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // as prepare does
    const std::string where = "fuzz.jsonl:" + std::to_string(n);
    std::string text, error;
    bool accepted = true;
    try {
      text = rw::data::jsonl_text_field(line, where);
    } catch (const rw::InputError& e) {
      accepted = false;
      error = e.what();
      if (error.rfind(where + ": ", 0) != 0) finding("the error does not start with file:line", line);
    }
    if (accepted && bytes.decode(bytes.encode(text)) != text) finding("byte tokenizer round trip differs", line);
#ifdef RW_FUZZ_DIFFERENTIAL
    const nlohmann::json other = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const bool other_has_text = other.is_object() && other.contains("text") && other["text"].is_string();
    if (accepted) {
      if (!other_has_text) finding("simdjson accepted a line nlohmann refuses (or sees no string \"text\")", line);
      if (other["text"].get<std::string>() != text) finding("simdjson and nlohmann read different text", line);
    } else if (other_has_text && line.find('\0') == std::string::npos &&  // nlohmann stops at a NUL byte
               error.find("not valid JSON") != std::string::npos &&
               error.find("too deep") == std::string::npos && error.find("number") == std::string::npos) {
      finding(("nlohmann accepted a line simdjson refuses: " + error).c_str(), line);
    }
#endif
  }
  return 0;
}
