// Deterministic input mutation shared by the bounded fuzz drivers that run
// in the test command (the libFuzzer builds of tools/fuzz.sh mutate by
// themselves). CNET_FUZZ_ITERATIONS overrides each driver's default budget.
#ifndef CNET_TESTS_FUZZ_MUTATE_H_
#define CNET_TESTS_FUZZ_MUTATE_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace cnet::fuzz {

// Iterations: CNET_FUZZ_ITERATIONS if set, else `fallback`.
int Iterations(int fallback);

// 1..4 random edits of `input`: byte flips, inserted tokens from
// `dictionary`, truncation, duplicated or deleted slices, deep bracket
// nesting, a long run of one byte, and splicing with `other`.
std::string Mutate(std::string input, const std::string& other,
                   const std::vector<std::string>& dictionary, std::mt19937_64& rng);

// Tokens that mean something to YAML, to templates and to JSON.
const std::vector<std::string>& SyntaxDictionary();

}  // namespace cnet::fuzz

#endif  // CNET_TESTS_FUZZ_MUTATE_H_
