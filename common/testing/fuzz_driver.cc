// A main() for fuzz targets built without libFuzzer (GCC builds, CI): runs the target on
// each file named on the command line, then on a fixed number of deterministic mutations of
// them, so every build exercises the target. With clang and -DPOLICY_FUZZ=ON the same target
// links against libFuzzer instead for open-ended, coverage-guided fuzzing.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 2;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    seeds.push_back(buffer.str());
  }
  seeds.push_back("");
  const char* env = std::getenv("POLICY_FUZZ_ITERATIONS");
  const long iterations = env != nullptr ? std::atol(env) : 200000;
  std::mt19937_64 random(20261128);
  for (const std::string& seed : seeds) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
  }
  for (long i = 0; i < iterations; ++i) {
    std::string input = seeds[random() % seeds.size()];
    const int edits = 1 + static_cast<int>(random() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = input.empty() ? 0 : random() % (input.size() + 1);
      switch (random() % 4) {
        case 0:  // Replace a byte.
          if (at < input.size()) input[at] = static_cast<char>(random());
          break;
        case 1:  // Insert a byte.
          input.insert(input.begin() + static_cast<long>(at), static_cast<char>(random()));
          break;
        case 2:  // Erase a byte.
          if (at < input.size()) input.erase(at, 1);
          break;
        default:  // Truncate.
          input.resize(at);
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  }
  std::printf("fuzz driver: %zu seeds, %ld mutations, no crash\n", seeds.size(), iterations);
  return 0;
}
