// input_error_check.h: checking that an expression is refused with one clear message.
//   error_of(f)                the message of the InputError f throws ("" if it throws none)
//   CHECK_ERROR(expr, needle)  expr throws an InputError whose message contains needle
#pragma once
#include <catch2/catch.hpp>

#include <string>

#include "src/common/input_error.h"

namespace rw::test {

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace rw::test

#define CHECK_ERROR(expr, needle)                                           \
  do {                                                                      \
    const std::string message_ = ::rw::test::error_of([&] { (void)(expr); }); \
    INFO("error: " << message_);                                            \
    CHECK(message_.find(needle) != std::string::npos);                      \
  } while (0)
