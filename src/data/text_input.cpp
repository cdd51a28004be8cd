// text_input.cpp
#include "src/data/text_input.h"

#include <zlib.h>
#if RINGWORLD_HAVE_ZSTD
#include <zstd.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "src/common/input_error.h"

namespace rw::data {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool starts_with_bytes(const std::string& head, const char* magic, std::size_t n) {
  return head.size() >= n && std::memcmp(head.data(), magic, n) == 0;
}

constexpr std::size_t kChunk = 1 << 16;

}  // namespace

struct TextReader::Source {
  virtual ~Source() = default;
  // Appends up to kChunk decoded bytes to out; returns how many (0 at the end). Throws InputError.
  virtual std::size_t read(std::string& out) = 0;
};

namespace {

class PlainSource : public TextReader::Source {
 public:
  PlainSource(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  ~PlainSource() override { std::fclose(file_); }
  std::size_t read(std::string& out) override {
    const std::size_t old = out.size();
    out.resize(old + kChunk);
    const std::size_t n = std::fread(&out[old], 1, kChunk, file_);
    out.resize(old + n);
    if (n == 0 && std::ferror(file_)) throw InputError("cannot read '" + path_ + "': " + std::strerror(errno));
    return n;
  }

 private:
  std::FILE* file_;
  std::string path_;
};

class GzipSource : public TextReader::Source {
 public:
  explicit GzipSource(const std::string& path) : path_(path) {
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) throw InputError("cannot open '" + path + "' (gzip)");
    gzbuffer(file_, kChunk);
  }
  ~GzipSource() override { gzclose(file_); }
  std::size_t read(std::string& out) override {
    const std::size_t old = out.size();
    out.resize(old + kChunk);
    const int n = gzread(file_, &out[old], static_cast<unsigned>(kChunk));
    if (n < 0) {
      int code = 0;
      const char* message = gzerror(file_, &code);
      out.resize(old);
      throw InputError("'" + path_ + "' is not a valid gzip file: " + (message ? message : "read error"));
    }
    out.resize(old + static_cast<std::size_t>(n));
    if (n == 0) {  // zlib reports a stream cut short at the end as Z_BUF_ERROR
      int code = 0;
      gzerror(file_, &code);
      if (code != Z_OK) throw InputError("'" + path_ + "' is a truncated or damaged gzip file");
    }
    return static_cast<std::size_t>(n);
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

#if RINGWORLD_HAVE_ZSTD
class ZstdSource : public TextReader::Source {
 public:
  ZstdSource(std::FILE* file, std::string path) : file_(file), path_(std::move(path)), in_(ZSTD_DStreamInSize(), '\0') {
    stream_ = ZSTD_createDStream();
    if (stream_ == nullptr) throw InputError("cannot start zstd decompression of '" + path_ + "'");
    ZSTD_initDStream(stream_);
  }
  ~ZstdSource() override {
    ZSTD_freeDStream(stream_);
    std::fclose(file_);
  }
  std::size_t read(std::string& out) override {
    const std::size_t old = out.size();
    out.resize(old + kChunk);
    ZSTD_outBuffer output{&out[old], kChunk, 0};
    while (output.pos == 0) {
      if (input_.pos == input_.size) {
        const std::size_t n = std::fread(&in_[0], 1, in_.size(), file_);
        if (n == 0) {
          out.resize(old);
          if (std::ferror(file_)) throw InputError("cannot read '" + path_ + "': " + std::strerror(errno));
          if (last_ != 0) throw InputError("'" + path_ + "' is a truncated zstd file");
          return 0;
        }
        input_ = ZSTD_inBuffer{in_.data(), n, 0};
      }
      last_ = ZSTD_decompressStream(stream_, &output, &input_);
      if (ZSTD_isError(last_))
        throw InputError("'" + path_ + "' is not a valid zstd file: " + ZSTD_getErrorName(last_));
    }
    out.resize(old + output.pos);
    return output.pos;
  }

 private:
  std::FILE* file_;
  std::string path_, in_;
  ZSTD_DStream* stream_ = nullptr;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  std::size_t last_ = 0;  // 0 when the last frame is complete
};
#endif

}  // namespace

std::vector<std::string> expand_input_paths(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (ec || !fs::exists(status)) throw InputError("input '" + path + "' does not exist");
    if (fs::is_regular_file(status)) {
      files.push_back(path);
      continue;
    }
    if (!fs::is_directory(status)) throw InputError("input '" + path + "' is neither a file nor a directory");
    std::vector<std::string> found;
    fs::recursive_directory_iterator it(path, fs::directory_options::follow_directory_symlink, ec), end;
    if (ec) throw InputError("cannot list directory '" + path + "': " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) throw InputError("cannot list directory '" + path + "': " + ec.message());
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec)) found.push_back(it->path().string());
    }
    if (found.empty()) throw InputError("directory '" + path + "' holds no files to tokenize");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

bool is_jsonl_name(const std::string& path) {
  return ends_with(path, ".jsonl") || ends_with(path, ".jsonl.gz") || ends_with(path, ".jsonl.zst");
}

TextReader::TextReader(const std::string& path) : path_(path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError("input '" + path + "' is a directory, expected a file");
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw InputError("cannot read input file '" + path + "': " + std::strerror(errno));
  std::string head(4096, '\0');
  head.resize(std::fread(&head[0], 1, head.size(), file));
  std::rewind(file);
  auto refuse = [&](const std::string& what, const std::string& how) {
    std::fclose(file);
    throw InputError("input '" + path + "' is " + what + ": " + how + " (ringworld prepare reads text, gzip" +
#if RINGWORLD_HAVE_ZSTD
                     " and zstd" +
#endif
                     ")");
  };
  if (starts_with_bytes(head, "\x1f\x8b", 2)) {
    std::fclose(file);
    compression_ = "gzip";
    source_ = std::make_unique<GzipSource>(path);
  } else if (starts_with_bytes(head, "\x28\xb5\x2f\xfd", 4)) {
#if RINGWORLD_HAVE_ZSTD
    compression_ = "zstd";
    source_ = std::make_unique<ZstdSource>(file, path);
#else
    refuse("zstd-compressed", "this build has no zstd support; decompress it first (zstd -d) or install libzstd-dev and rebuild");
#endif
  } else if (starts_with_bytes(head, "BZh", 3)) {
    refuse("bzip2-compressed", "decompress it first (bunzip2 -k)");
  } else if (starts_with_bytes(head, "\xfd\x37\x7a\x58\x5a\x00", 6)) {
    refuse("xz-compressed", "decompress it first (unxz -k)");
  } else if (starts_with_bytes(head, "PK\x03\x04", 4)) {
    refuse("a zip archive", "unpack it first (unzip) and give the files or their directory");
  } else if (starts_with_bytes(head, "\x04\x22\x4d\x18", 4)) {
    refuse("lz4-compressed", "decompress it first (lz4 -d)");
  } else if (starts_with_bytes(head, "7z\xbc\xaf\x27\x1c", 6)) {
    refuse("a 7z archive", "unpack it first (7z x)");
  } else if (head.find('\0') != std::string::npos) {
    refuse("binary (NUL bytes in its first 4 KiB: an HDF5 or other binary file, or UTF-16 text)",
           "give text files (UTF-8)");
  } else {
    source_ = std::make_unique<PlainSource>(file, path);
  }
}

TextReader::~TextReader() = default;

bool TextReader::fill() {
  if (pos_ > 0) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  return source_->read(buffer_) > 0;
}

bool TextReader::read_line(std::string& line) {
  std::size_t searched = pos_;
  for (;;) {
    const std::size_t newline = buffer_.find('\n', searched);
    if (newline != std::string::npos) {
      line.assign(buffer_, pos_, newline - pos_);
      pos_ = newline + 1;
      return true;
    }
    searched = buffer_.size() - pos_;  // offset after fill() moves the unread part to the front
    if (!fill()) {
      if (pos_ >= buffer_.size()) return false;
      line.assign(buffer_, pos_, std::string::npos);
      pos_ = buffer_.size();
      return true;
    }
  }
}

std::string TextReader::read_all() {
  while (fill()) {
  }
  std::string rest = buffer_.substr(pos_);
  buffer_.clear();
  pos_ = 0;
  return rest;
}

}  // namespace rw::data
