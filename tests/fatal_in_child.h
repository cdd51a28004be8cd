// fatal_in_child.h: runs a piece of test code in a forked child, for the paths that end the
// process: fatal() (its message comes back through a pipe, exit code 97) and faults (SIGSEGV,
// SIGBUS, SIGABRT with their default handling, Catch2's handlers removed). Used by the device
// tests (test_backend_streams, test_vision_kernels) and the SIMT emulation's (test_simt_emu).
// Not for a process that has used CUDA or HIP: their runtimes cannot be used in a forked child.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <string>

#include "src/common/fatal.h"

namespace rw::test {

struct ChildResult {
  bool signaled = false;
  int signal = 0;
  int exit_code = -1;
  std::string fatal_message;  // what fatal() reported (exit code 97)
};

inline int& fatal_pipe_of_child() {
  static int fd = -1;
  return fd;
}

inline void report_fatal_to_parent(const std::string& message) {
  if (write(fatal_pipe_of_child(), message.data(), message.size()) < 0) {
  }
  _exit(97);
}

// Runs fn in a forked child and waits for it; the child exits 0 when fn returns.
inline ChildResult fork_and_run(const std::function<void()>& fn) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    signal(SIGABRT, SIG_DFL);
    fatal_pipe_of_child() = fds[1];
    set_fatal_handler(&report_fatal_to_parent);
    fn();
    _exit(0);
  }
  close(fds[1]);
  std::string message;
  char buffer[512];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof buffer)) > 0) message.append(buffer, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  ChildResult r;
  r.signaled = WIFSIGNALED(status);
  if (r.signaled) r.signal = WTERMSIG(status);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.fatal_message = message;
  return r;
}

}  // namespace rw::test
