// tokenizer.cpp
#include "src/data/tokenizer.h"

#include "src/common/input_error.h"
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
  throw InputError("unknown tokenizer '" + spec + "' (expected byte or sentencepiece:MODEL)");
}

namespace {

// A small JSON reader: enough to find the top-level "text" string of an object and skip any
// other value.
struct JsonCursor {
  const std::string& s;
  const std::string& where;
  std::size_t i = 0;
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(where + ": " + what + " (column " + std::to_string(i + 1) + ")");
  }
  void skip_space() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  }
  void expect(char c) {
    skip_space();
    if (i >= s.size() || s[i] != c) fail(std::string("expected '") + c + "'");
    ++i;
  }
  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (i + 4 > s.size()) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s[i++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string string_value() {
    expect('"');
    std::string out;
    while (true) {
      if (i >= s.size()) fail("unterminated string");
      const char c = s[i++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size()) fail("unterminated escape");
      const char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < s.size() && s[i] == '\\' && s[i + 1] == 'u') {
            i += 2;
            const uint32_t low = hex4();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }
  void skip_value(int depth) {
    if (depth > 64) fail("nesting too deep");
    skip_space();
    if (i >= s.size()) fail("missing value");
    const char c = s[i];
    if (c == '"') {
      string_value();
    } else if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i;
      skip_space();
      if (i < s.size() && s[i] == close) {
        ++i;
        return;
      }
      while (true) {
        if (c == '{') {
          string_value();
          expect(':');
        }
        skip_value(depth + 1);
        skip_space();
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        expect(close);
        return;
      }
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ') ++i;
    }
  }
};

}  // namespace

std::string jsonl_text_field(const std::string& line, const std::string& where) {
  JsonCursor c{line, where};
  c.expect('{');
  bool found = false;
  std::string text;
  c.skip_space();
  if (c.i < line.size() && line[c.i] == '}') c.fail("object has no \"text\" field");
  while (true) {
    const std::string key = c.string_value();
    c.expect(':');
    c.skip_space();
    if (key == "text") {
      if (c.i >= line.size() || line[c.i] != '"') c.fail("\"text\" is not a string");
      text = c.string_value();
      found = true;
    } else {
      c.skip_value(0);
    }
    c.skip_space();
    if (c.i < line.size() && line[c.i] == ',') {
      ++c.i;
      continue;
    }
    c.expect('}');
    break;
  }
  if (!found) c.fail("object has no \"text\" field");
  return text;
}

}  // namespace rw::data
