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

// The only pointer to the block lives in a volatile slot of a frame that is gone before the
// exit check (clang kept it in main's frame, where LeakSanitizer still found it and stayed quiet).
__attribute__((noinline)) static void leak_one() {
  char* volatile p = static_cast<char*>(std::malloc(4096));
  p[0] = 1;
  p = nullptr;
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
    leak_one();
  } else {
    return 2;
  }
  std::printf("selfcheck: %s was not caught\n", argv[1]);
  return 0;
}
