// FUZZ_CHECK: the invariant check of fuzz targets. A violation prints what
// failed and aborts, which libFuzzer reports as a crash with the input and
// the gtest drivers as a death of the test (with the iteration logged).
#ifndef CNET_TESTS_FUZZ_CHECK_H_
#define CNET_TESTS_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, what)                                                        \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "fuzz invariant violated at %s:%d: %s (%s)\n", __FILE__,   \
                   __LINE__, #cond, std::string(what).c_str());                       \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

#endif  // CNET_TESTS_FUZZ_CHECK_H_
