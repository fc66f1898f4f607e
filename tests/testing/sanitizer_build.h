// Whether the test is compiled with AddressSanitizer or ThreadSanitizer (the
// "asan" and "tsan" CMake presets build every target, so the servers a test
// starts are instrumented too). Tests that bound wall time or memory widen
// those bounds there: the sanitizers run code several times slower and keep
// shadow memory and (ASan) a quarantine of freed blocks. A bound is never
// widened in a normal build.
//
// Example:
//   constexpr auto kDeadline = std::chrono::seconds(30) * wf::testing::kSanitizerSlowdown;
#ifndef WF_TESTS_TESTING_SANITIZER_BUILD_H_
#define WF_TESTS_TESTING_SANITIZER_BUILD_H_

namespace wf::testing {

// The TSan build hides __SANITIZE_THREAD__ from third-party headers and
// defines WF_SANITIZE_THREAD instead (cmake/WfTargets.cmake).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(WF_SANITIZE_THREAD)
inline constexpr bool kSanitizerBuild = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kSanitizerBuild = true;
#else
inline constexpr bool kSanitizerBuild = false;
#endif
#else
inline constexpr bool kSanitizerBuild = false;
#endif

// The factor for wall-time budgets of multi-process tests: 1 in a normal build.
inline constexpr int kSanitizerSlowdown = kSanitizerBuild ? 4 : 1;

}  // namespace wf::testing

#endif  // WF_TESTS_TESTING_SANITIZER_BUILD_H_
