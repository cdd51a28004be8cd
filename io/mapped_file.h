// mapped_file.h: a whole file mapped read-only (mmap), for the importers: they read tensors
// straight from the mapping, one at a time, so a model larger than memory streams through the
// page cache (release() hands a finished range's pages back) and nothing is copied whole.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace rw::io {

class MappedFile {
 public:
  // Throws InputError naming the file when it is missing, not a regular file or unreadable.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&&) = delete;

  const uint8_t* data() const { return data_; }  // nullptr for an empty file
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Tells the kernel the pages of [begin, end) (pointers into data()) are no longer needed.
  void release(const uint8_t* begin, const uint8_t* end) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace rw::io
