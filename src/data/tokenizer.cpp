// tokenizer.cpp
#include "src/data/tokenizer.h"

#include <simdjson.h>

#include <cstring>
#include <string_view>

#include "src/common/input_error.h"
#include "src/data/jsonl_object.h"
#include "src/data/passkey_tokenizer.h"
#ifdef RINGWORLD_HAVE_SENTENCEPIECE
#include "src/data/sentencepiece_tokenizer.h"
#endif

namespace rw::data {

std::vector<int32_t> ByteTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text(ids.size(), '\0');
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] > 255) throw InputError("token id " + std::to_string(ids[i]) + " is not a byte");
    text[i] = static_cast<char>(ids[i]);
  }
  return text;
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec) {
  if (spec == "byte") return std::make_unique<ByteTokenizer>();
  if (spec == "passkey" || spec.rfind("passkey:", 0) == 0) return make_passkey_tokenizer(spec);
  const std::string sp_prefix = "sentencepiece:";
  if (spec.rfind(sp_prefix, 0) == 0) {
    const std::string model = spec.substr(sp_prefix.size());
    if (model.empty()) throw InputError("tokenizer '" + spec + "': no model file (expected sentencepiece:MODEL)");
#ifdef RINGWORLD_HAVE_SENTENCEPIECE
    return std::make_unique<SentencePieceTokenizer>(model);
#else
    throw InputError("tokenizer '" + spec + "': ringworld was built without SentencePiece; install it "
                     "(Debian/Ubuntu: apt-get install libsentencepiece-dev, or make deps) and rebuild with a "
                     "fresh configure (cmake -S . -B build && make build)");
#endif
  }
  throw InputError("unknown tokenizer '" + spec + "' (expected byte, passkey[:VOCAB] or sentencepiece:MODEL)");
}

// One JSON object per line (jsonl_object.h: validated whole, parser reused per thread).
std::string jsonl_text_field(const std::string& line, const std::string& where) {
  const simdjson::dom::object object = parse_jsonl_object(line, where);
  bool found = false;
  std::string_view text;
  for (const simdjson::dom::key_value_pair field : object) {
    if (field.key != "text") continue;
    // JSON leaves duplicate keys to the reader (RFC 8259 4): refuse rather than pick one.
    if (found) throw InputError(where + ": the object has more than one \"text\" field");
    if (field.value.get(text)) throw InputError(where + ": \"text\" is not a string");
    found = true;
  }
  if (!found) throw InputError(where + ": object has no \"text\" field");
  return std::string(text);
}

}  // namespace rw::data
