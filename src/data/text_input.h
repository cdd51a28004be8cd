// text_input.h: the input files of `prepare`, read as text whatever their packaging.
// - A directory stands for the regular files under it (recursively, sorted by path; names
//   starting with '.' are skipped).
// - Compression is recognised by the first bytes, not the name: gzip (zlib) and zstd (libzstd,
//   when built with it) are decompressed while reading; bzip2, xz, zip, lz4 and 7z are refused
//   with the command that decompresses them. A file whose first block holds NUL bytes is
//   refused as binary (an HDF5 file, UTF-16 text): it must never be tokenized as bytes.
// - A .jsonl file (also .jsonl.gz, .jsonl.zst) holds one document per line; others one each.
// Every problem is an InputError naming the file.
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace rw::data {

// The files named by `paths`, directories expanded. Throws InputError for a path that does not
// exist, is neither a file nor a directory, or a directory without files.
std::vector<std::string> expand_input_paths(const std::vector<std::string>& paths);

// True when the name says one document per line (.jsonl, .jsonl.gz, .jsonl.zst).
bool is_jsonl_name(const std::string& path);

// Reads a file as text, decompressing gzip and zstd; see above for what is refused.
class TextReader {
 public:
  explicit TextReader(const std::string& path);  // throws InputError
  ~TextReader();
  TextReader(const TextReader&) = delete;
  TextReader& operator=(const TextReader&) = delete;

  // The next line without its '\n'; false at the end of the file.
  bool read_line(std::string& line);
  // The rest of the file.
  std::string read_all();
  // "gzip", "zstd" or "" (plain).
  const std::string& compression() const { return compression_; }

  struct Source;  // the decoder (plain, gzip, zstd)

 private:
  bool fill();  // reads more decoded bytes into buffer_; false at the end
  std::string path_, compression_, buffer_;
  std::size_t pos_ = 0;
  std::unique_ptr<Source> source_;
};

}  // namespace rw::data
