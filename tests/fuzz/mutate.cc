#include "tests/fuzz/mutate.h"

#include <cstdlib>

namespace cnet::fuzz {

int Iterations(int fallback) {
  if (const char* env = std::getenv("CNET_FUZZ_ITERATIONS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  return fallback;
}

const std::vector<std::string>& SyntaxDictionary() {
  static const auto* d = new std::vector<std::string>{
      ":", "- ", "[", "]", "{", "}", "\n", "  ", "\t", "&a ", "*a", "!!binary ", "? ", "|",
      ">", "#", "'", "\"", ",", "~", "null", "1e999", "-0", "0x1F", "\xff\xfe", "%YAML 1.2\n",
      "---\n", "...\n", "<<: *a\n", "\\u0000", "{{", "}}", "{{ ", " }}", "inputs.", "steps.",
      ".output", "[0]", "['k']", "len(", "contains(", " and ", " or ", "not ", "==", "!=",
      "<=", ">=", "(", ")", "9223372036854775807", "-9223372036854775808", "1.5e308", "true",
      "\\", "\xc3\x28", "\xf0\x9f\x98\x80", std::string(1, '\0')};
  return *d;
}

std::string Mutate(std::string s, const std::string& other,
                   const std::vector<std::string>& dictionary, std::mt19937_64& rng) {
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int r = 0; r < rounds; ++r) {
    size_t pos = rng() % (s.size() + 1);
    switch (rng() % 8) {
      case 0:
        if (pos < s.size()) s[pos] = static_cast<char>(rng());
        break;
      case 1:
        s.insert(pos, dictionary[rng() % dictionary.size()]);
        break;
      case 2:
        s.resize(pos);
        break;
      case 3:
        s.insert(pos, s.substr(pos, rng() % 200));
        break;
      case 4:
        s.insert(pos, std::string(1 + rng() % 3000, "[{(-"[rng() % 4]));
        break;
      case 5:
        s.insert(pos, std::string(1 + rng() % 20000, static_cast<char>(rng())));
        break;
      case 6:
        if (pos < s.size()) s.erase(pos, rng() % 100);
        break;
      case 7:
        if (!other.empty()) {
          size_t from = rng() % other.size();
          s.insert(pos, other.substr(from, rng() % 400));
        }
        break;
    }
  }
  return s;
}

}  // namespace cnet::fuzz
