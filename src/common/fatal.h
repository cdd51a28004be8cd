// fatal.h: the one failure path for conditions that must never happen in a correct run
// (internal invariants, failed library calls). A failure reports the call, file, line and
// (through the installed handler) the MPI rank, then ends the whole job so no rank is left
// waiting. src/ cannot call MPI, so mpi/runtime.cpp installs a handler that calls MPI_Abort.
//
// Bad user input is not fatal(): it is an InputError (input_error.h), thrown at I/O
// boundaries and turned into one message and a non-zero exit by the command's main.
#pragma once
#include <string>

namespace rw {

// Handler signature: called with a fully formatted message; must not return.
using FatalHandler = void (*)(const std::string& message);

// Installs the handler (the default prints to stderr and calls std::abort()).
void set_fatal_handler(FatalHandler handler);

[[noreturn]] void fatal(const char* call, const char* file, int line, const std::string& detail);

// Files being written (temporary names) that a fatal error removes before the job ends, so a
// crash never leaves a half-written file behind under any name.
void add_cleanup_path(const std::string& path);
void remove_cleanup_path(const std::string& path);
void run_cleanup();  // removes the registered files (called by fatal(); idempotent)

}  // namespace rw

// Always on (never compiled out): evaluates cond once.
#define RW_CHECK(cond, detail)                                        \
  do {                                                                \
    if (!(cond)) ::rw::fatal(#cond, __FILE__, __LINE__, (detail));    \
  } while (0)

#define RW_FAIL(detail) ::rw::fatal("RW_FAIL", __FILE__, __LINE__, (detail))
