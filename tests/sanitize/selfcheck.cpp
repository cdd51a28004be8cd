// selfcheck.cpp: proves that a sanitizer build catches what it is for and that a report fails
// the test (ctest expects each of these to fail: WILL_FAIL). Built only with RINGWORLD_SANITIZE.
//   selfcheck heap    a heap buffer overflow (AddressSanitizer)
//   selfcheck signed  a signed integer overflow (UndefinedBehaviorSanitizer, which must not
//                     just print and carry on: -fno-sanitize-recover)
//   selfcheck leak    a leaked allocation (LeakSanitizer at exit)
// Each exits 0 when nothing caught it: that is the failure ctest looks for.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

// LeakSanitizer scans conservatively: any word on the live stack or in a register that happens
// to equal a block's address keeps that block "reachable". One leaked block was missed in about
// 3 runs of 10 (a stale copy left by the allocator, depending on the address layout), so: 64
// blocks, each pointer only in a volatile slot of a frame that is gone, and the stack below
// main scrubbed afterwards; a stale copy can hide a few of them, not all.
__attribute__((noinline)) static void leak_one() {
  char* volatile p = static_cast<char*>(std::malloc(4096));
  p[0] = 1;
  p = nullptr;
}

__attribute__((noinline)) static void scrub_stack() {
  volatile char area[1 << 16];
  for (std::size_t i = 0; i < sizeof area; ++i) area[i] = 0;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  volatile int index = 8;  // volatile: the compiler may not see the bug and remove it
  if (!std::strcmp(argv[1], "heap")) {
    std::vector<int> v(8);
    v.data()[index] = 1;
  } else if (!std::strcmp(argv[1], "signed")) {
    volatile int big = 2147483647;
    std::printf("%d\n", big + index);
  } else if (!std::strcmp(argv[1], "leak")) {
    for (int i = 0; i < 64; ++i) leak_one();
    scrub_stack();
  } else {
    return 2;
  }
  std::printf("selfcheck: %s was not caught\n", argv[1]);
  return 0;
}
