// fatal.cpp: formats a fatal error and hands it to the installed handler.
#include "src/common/fatal.h"

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <mutex>
#include <vector>

namespace rw {
namespace {

void default_handler(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

FatalHandler g_handler = &default_handler;
std::mutex g_cleanup_mutex;
std::vector<std::string> g_cleanup_paths;

}  // namespace

void set_fatal_handler(FatalHandler handler) { g_handler = handler ? handler : &default_handler; }

void add_cleanup_path(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_cleanup_mutex);
  g_cleanup_paths.push_back(path);
}

void remove_cleanup_path(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_cleanup_mutex);
  g_cleanup_paths.erase(std::remove(g_cleanup_paths.begin(), g_cleanup_paths.end(), path),
                        g_cleanup_paths.end());
}

void run_cleanup() {
  std::vector<std::string> paths;
  {
    std::lock_guard<std::mutex> lock(g_cleanup_mutex);
    paths.swap(g_cleanup_paths);
  }
  for (const auto& p : paths) std::remove(p.c_str());
}

void fatal(const char* call, const char* file, int line, const std::string& detail) {
  std::string message = "ringworld: fatal: ";
  message += detail;
  message += " [";
  message += call;
  message += " failed at ";
  message += file;
  message += ":";
  message += std::to_string(line);
  message += "]";
  run_cleanup();
  g_handler(message);
  std::abort();  // a handler must not return; make sure of it
}

}  // namespace rw
