// frame_directory.cpp: see frame_directory.h.
#include "io/frame_directory.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "src/common/input_error.h"

namespace fs = std::filesystem;

namespace rw::io {

std::vector<std::string> list_frame_files(const std::string& directory) {
  std::error_code ec;
  fs::directory_iterator it(directory, ec);
  if (ec) throw InputError("cannot list the frame directory '" + directory + "': " + ec.message());
  std::vector<std::string> files;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) throw InputError("cannot list the frame directory '" + directory + "': " + ec.message());
    const std::string name = it->path().filename().string();
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name.empty() || name[0] == '.' || !it->is_regular_file(ec)) continue;
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") files.push_back(it->path().string());
  }
  if (ec) throw InputError("cannot list the frame directory '" + directory + "': " + ec.message());
  if (files.empty()) throw InputError("the frame directory '" + directory + "' holds no .png, .jpg or .jpeg file");
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace rw::io
