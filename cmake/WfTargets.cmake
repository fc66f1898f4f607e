# Helpers shared by every module's CMakeLists.txt.

# Warnings as errors and the C++ level for our own targets only (third-party
# headers come in as SYSTEM through their imported targets).
function(wf_target_defaults target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  if(BITNET_SANITIZE STREQUAL "address")
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
  elseif(BITNET_SANITIZE STREQUAL "thread")
    # -Wno-tsan: g++ warns that TSan does not instrument the fences that
    # Asio's headers inline into every target using it (we have none).
    # -U__SANITIZE_THREAD__: Protobuf's and Abseil's headers change class
    # layouts under TSan (MapFieldBase gains two counters), while Debian's
    # libraries and the generated bitnet_proto are built without it; the
    # mismatch crashes. WF_SANITIZE_THREAD tells our own code instead, and
    # _GLIBCXX_TSAN keeps what libstdc++ would do under TSan (it changes no
    # layout): std::shared_ptr's release without a fast path that TSan
    # cannot follow.
    target_compile_options(${target} PRIVATE -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan
      -U__SANITIZE_THREAD__)
    target_compile_definitions(${target} PRIVATE WF_SANITIZE_THREAD=1 _GLIBCXX_TSAN=1)
    target_link_options(${target} PUBLIC -fsanitize=thread)
  endif()
endfunction()

# wf_test(NAME SOURCES... LIBS...) builds one GoogleTest binary and registers
# each of its tests with CTest (discovered when ctest runs, not at build time).
function(wf_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  wf_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gmock GTest::gtest_main)
  # The directories are also compiled in: a ';'-separated ENVIRONMENT list
  # does not survive gtest_discover_tests' PROPERTIES, so only WF_SOURCE_DIR
  # is passed that way, and a test run by hand needs neither.
  target_compile_definitions(${name} PRIVATE
    WF_DEFAULT_SOURCE_DIR="${PROJECT_SOURCE_DIR}" WF_DEFAULT_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    DISCOVERY_MODE PRE_TEST
    PROPERTIES ENVIRONMENT "WF_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
