// sentencepiece_tokenizer.cpp: SentencePieceTokenizer over libsentencepiece's processor. The model
// file is read once: its bytes are checksummed and handed to the processor, so the checksum in
// the description is that of exactly what was loaded.
#include "src/data/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::data {
namespace {

namespace fs = std::filesystem;

// POSIX cksum (IEEE Std 1003.1, the `cksum` utility), so users can check a dataset's model with
// `cksum MODEL`: CRC-32 with polynomial 0x04C11DB7 taken most significant bit first, over the
// bytes and then the length in as few bytes as it needs (least significant first), complemented.
uint32_t posix_cksum(const std::string& bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i << 24;
      for (int bit = 0; bit < 8; ++bit) c = (c & 0x80000000u) ? (c << 1) ^ 0x04C11DB7u : c << 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0;
  auto feed = [&](unsigned char b) { crc = (crc << 8) ^ table[((crc >> 24) ^ b) & 0xFFu]; };
  for (const char b : bytes) feed(static_cast<unsigned char>(b));
  for (uint64_t n = bytes.size(); n != 0; n >>= 8) feed(static_cast<unsigned char>(n & 0xFFu));
  return ~crc;
}

std::string read_model_file(const std::string& path) {
  const std::string what = "SentencePiece model '" + path + "'";
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError(what + " does not exist");
  if (!fs::is_regular_file(path, ec)) throw InputError(what + " is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read " + what);
  std::string bytes(std::istreambuf_iterator<char>(in), {});
  if (in.bad()) throw InputError("cannot read " + what);
  if (bytes.empty()) throw InputError(what + " is empty");
  return bytes;
}

}  // namespace

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path) : impl_(std::make_unique<Impl>()) {
  const std::string bytes = read_model_file(model_path);
  const auto status = impl_->processor.LoadFromSerializedProto(bytes);
  if (!status.ok()) {
    // The library's message for bytes that are no model names its own source line: say it plainly.
    const std::string detail = status.message();
    throw InputError("'" + model_path + "' is not a SentencePiece model (" +
                     (detail.find("ParseFromArray") != std::string::npos ? "it does not parse as one" : detail) + ")");
  }
  vocab_size_ = impl_->processor.GetPieceSize();
  if (vocab_size_ <= 0) throw InputError("SentencePiece model '" + model_path + "' has no pieces");
  bos_id_ = impl_->processor.bos_id();
  eos_id_ = impl_->processor.eos_id();
  std::error_code ec;
  fs::path absolute = fs::absolute(model_path, ec);
  if (ec) absolute = model_path;
  description_ = "sentencepiece:" + absolute.lexically_normal().string() + " (cksum " +
                 std::to_string(posix_cksum(bytes)) + " " + std::to_string(bytes.size()) + ")";
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = impl_->processor.Encode(text, &ids);
  RW_CHECK(status.ok(), "SentencePiece Encode: " + status.ToString());  // loaded model: cannot fail
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  for (const int32_t id : ids)
    if (id < 0 || id >= vocab_size_)
      throw InputError("token id " + std::to_string(id) + " is not in the SentencePiece vocabulary (" +
                       std::to_string(vocab_size_) + " pieces)");
  std::string text;
  const auto status = impl_->processor.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  RW_CHECK(status.ok(), "SentencePiece Decode: " + status.ToString());  // ids checked above
  return text;
}

}  // namespace rw::data
