// transfer_limits.cpp
#include "src/common/transfer_limits.h"

#include <cstdlib>
#include <string>

#include "src/common/fatal.h"

namespace rw {
namespace {

std::size_t limit_from_env(const char* name, std::size_t default_bytes) {
  const char* text = std::getenv(name);
  if (!text || !*text) return default_bytes;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  RW_CHECK(end && *end == '\0' && text[0] != '-' && value >= 1 && value <= default_bytes,
           std::string(name) + " must be a byte count from 1 to " + std::to_string(default_bytes) + ", not '" +
               text + "'");
  return static_cast<std::size_t>(value);
}

}  // namespace

std::size_t mpi_chunk_bytes() { return limit_from_env("RINGWORLD_MPI_CHUNK_BYTES", kMaxBytesPerMpiCall); }
std::size_t h5_chunk_bytes() { return limit_from_env("RINGWORLD_H5_CHUNK_BYTES", kMaxBytesPerH5Call); }

}  // namespace rw
