// Where tests find shared reference data.
//
// WF_GOLDEN_DIR (default: $WF_SOURCE_DIR/../shared/golden) holds golden GGUF
// models and reference outputs; WF_TOKENIZER_VECTORS (default:
// $WF_SOURCE_DIR/../shared/tokenizers/llama3/vectors.jsonl) tokenizer vectors.
// CTest sets WF_SOURCE_DIR to the repository root; test binaries made with
// wf_test() also have the source and build directories compiled in, so they
// find both when run by hand. WF_BINARY_DIR overrides the build directory.
#ifndef WF_COMMON_TESTING_TEST_PATHS_H_
#define WF_COMMON_TESTING_TEST_PATHS_H_

#include <cstdlib>
#include <string>

namespace wf::testing {

inline std::string SourceDir() {
  const char* src = std::getenv("WF_SOURCE_DIR");
  if (src != nullptr && *src != '\0') return src;
#ifdef WF_DEFAULT_SOURCE_DIR
  return WF_DEFAULT_SOURCE_DIR;
#else
  return ".";
#endif
}

inline std::string GoldenDir() {
  if (const char* d = std::getenv("WF_GOLDEN_DIR"); d != nullptr && *d != '\0') return d;
  return SourceDir() + "/../shared/golden";
}

inline std::string BinaryDir() {
  const char* b = std::getenv("WF_BINARY_DIR");
  if (b != nullptr && *b != '\0') return b;
#ifdef WF_DEFAULT_BINARY_DIR
  return WF_DEFAULT_BINARY_DIR;
#else
  return SourceDir() + "/build";
#endif
}

}  // namespace wf::testing

#endif  // WF_COMMON_TESTING_TEST_PATHS_H_
