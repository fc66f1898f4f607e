#include "worker/service/worker_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::service {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

MATCHER_P(IsOkAndHolds, value, "is OK and holds " + ::testing::PrintToString(value)) {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  *result_listener << "holds " << *arg;
  return *arg == value;
}

// CTest sets WF_SOURCE_DIR; the build provides a default for direct runs.
std::string ExampleYamlPath() {
  const char* src = std::getenv("WF_SOURCE_DIR");
  if (src == nullptr || *src == '\0') src = WF_DEFAULT_SOURCE_DIR;
  return absl::StrCat(src, "/worker/service/worker.example.yaml");
}

// A valid config: the defaults plus a model path.
WorkerConfig Valid() {
  WorkerConfig c;
  c.model_path = "model.gguf";
  return c;
}

class WorkerConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "wf_worker_config_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  // Registers the worker flags plus one mode flag, parses argv and resolves.
  absl::StatusOr<WorkerConfig> ParseAndResolve(std::vector<std::string> args, WorkerConfig config = {}) {
    FlagSet flags("test");
    RegisterWorkerFlags(&flags, &config);
    flags.String("prompt", &prompt_, "a mode flag of main");
    std::vector<char*> argv = {const_cast<char*>("wf_worker")};
    for (std::string& a : args) argv.push_back(a.data());
    absl::Status parsed = flags.Parse(static_cast<int>(argv.size()), argv.data());
    if (!parsed.ok()) return parsed;
    return ResolveWorkerConfig(flags, config);
  }

  fs::path dir_;
  std::string prompt_;
};

TEST_F(WorkerConfigTest, Defaults) {
  const WorkerConfig c;
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 50051);
  EXPECT_EQ(c.metrics_port, 9091);
  EXPECT_EQ(c.threads, 0);
  EXPECT_EQ(c.max_running, 16);
  EXPECT_EQ(c.max_waiting, 256);
  EXPECT_EQ(c.max_step_tokens, 256);
  EXPECT_EQ(c.max_context, 0);
  EXPECT_EQ(c.max_new_tokens, 512);
  EXPECT_EQ(c.block_size, 16);
  EXPECT_EQ(c.drain_timeout_seconds, 30);
  EXPECT_EQ(c.load_report_interval_ms, 100);
  EXPECT_EQ(c.max_message_bytes, 4 << 20);
  EXPECT_THAT(ValidateWorkerConfig(Valid()), IsOk());
}

TEST_F(WorkerConfigTest, ExampleYamlListsEveryKeyWithItsDefault) {
  ASSERT_OK_AND_ASSIGN(const std::string text, ReadFileToString(ExampleYamlPath()));
  for (const std::string& key : WorkerConfigKeys()) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("\n", key, ": "))) << "worker.example.yaml lacks key " << key;
  }
  // Loaded over a config where everything differs from the defaults, the
  // example must restore every default.
  WorkerConfig c;
  c.model_path = "x";
  c.model_name = "x";
  c.max_context = 1;
  c.host = "x";
  c.port = 1;
  c.metrics_host = "x";
  c.metrics_port = 1;
  c.max_message_bytes = 1;
  c.threads = 1;
  c.max_running = 1;
  c.max_waiting = 1;
  c.max_step_tokens = 1;
  c.max_new_tokens = 1;
  c.kv_cache_tokens = 1;
  c.kv_cache_mb = 1;
  c.block_size = 1;
  c.prefix_caching = false;
  c.drain_timeout_seconds = 1;
  c.load_report_interval_ms = 1;
  c.log_level = "x";
  ASSERT_THAT(ApplyYamlFile(ExampleYamlPath(), &c), IsOk());
  EXPECT_TRUE(c == WorkerConfig{});
}

TEST_F(WorkerConfigTest, FlagsOnly) {
  ASSERT_OK_AND_ASSIGN(WorkerConfig c,
                       ParseAndResolve({"-m", "a.gguf", "--port=6000", "--max-running", "4", "--drain-timeout-seconds",
                                        "2.5", "--no-prefix-caching", "--prompt", "hi"}));
  EXPECT_EQ(c.model_path, "a.gguf");
  EXPECT_EQ(c.port, 6000);
  EXPECT_EQ(c.max_running, 4);
  EXPECT_EQ(c.drain_timeout_seconds, 2.5);
  EXPECT_FALSE(c.prefix_caching);
  EXPECT_EQ(c.max_waiting, 256);
  EXPECT_EQ(prompt_, "hi");
}

TEST_F(WorkerConfigTest, PrecedenceDefaultsThenYamlThenFlags) {
  const std::string path = Write("w.yaml",
                                 "model_path: from_yaml.gguf\n"
                                 "port: 6000\n"
                                 "max_running: 8\n"
                                 "threads: 3\n"
                                 "prefix_caching: true\n"
                                 "log_level: debug\n");
  ASSERT_OK_AND_ASSIGN(WorkerConfig c, ParseAndResolve({"--config", path, "--port", "7000",
                                                        // equal to the default, but given: still wins
                                                        "--threads", "0", "--no-prefix-caching"}));
  EXPECT_EQ(c.port, 7000);                    // flag over YAML
  EXPECT_EQ(c.threads, 0);                    // flag over YAML
  EXPECT_FALSE(c.prefix_caching);             // flag over YAML
  EXPECT_EQ(c.max_running, 8);                // YAML over default
  EXPECT_EQ(c.model_path, "from_yaml.gguf");  // YAML over default
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.max_waiting, 256);  // default
  EXPECT_EQ(c.config_file, path);
}

TEST_F(WorkerConfigTest, CallerDefaultsAreTheLowestLayer) {
  WorkerConfig base;
  base.max_running = 4;
  base.max_waiting = 9;
  const std::string path = Write("w.yaml", "max_waiting: 10\n");
  ASSERT_OK_AND_ASSIGN(WorkerConfig c, ParseAndResolve({"--config", path, "--model-path", "m.gguf"}, base));
  EXPECT_EQ(c.max_running, 4);
  EXPECT_EQ(c.max_waiting, 10);
}

TEST_F(WorkerConfigTest, ResolveValidatesTheMergedResult) {
  const std::string path = Write("w.yaml", "max_running: 512\n");
  EXPECT_THAT(ParseAndResolve({"--config", path, "--model-path", "m.gguf"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_step_tokens (--max-step-tokens)")));
  EXPECT_THAT(ParseAndResolve({"--config", path, "--model-path", "m.gguf", "--max-step-tokens", "512"}), IsOk());
  EXPECT_THAT(ParseAndResolve({"--port", "-1"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                                          AllOf(HasSubstr("model_path (--model-path) is required"),
                                                                HasSubstr("port (--port) must be in 0..65535, got -1"))));
}

TEST_F(WorkerConfigTest, ResolveReportsYamlErrors) {
  EXPECT_THAT(ParseAndResolve({"--config", (dir_ / "missing.yaml").string()}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.yaml")));
  const std::string path = Write("bad.yaml", "port: many\n");
  EXPECT_THAT(ParseAndResolve({"--config", path, "--port", "1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad.yaml:1: key 'port'")));
}

TEST_F(WorkerConfigTest, HelpListsTheServingFlags) {
  WorkerConfig c;
  FlagSet flags("test");
  RegisterWorkerFlags(&flags, &c);
  const std::string help = flags.Help();
  for (const std::string& key : WorkerConfigKeys()) {
    std::string flag = key;
    for (char& ch : flag) ch = ch == '_' ? '-' : ch;
    EXPECT_THAT(help, HasSubstr(absl::StrCat("--", flag))) << key;
  }
  EXPECT_THAT(help, HasSubstr("--config STR"));
  EXPECT_THAT(help, HasSubstr("(default: 50051)"));
}

// --- YAML errors ---

TEST_F(WorkerConfigTest, YamlSetsEveryType) {
  WorkerConfig c;
  ASSERT_THAT(ApplyYamlFile(Write("ok.yaml",
                                  "# comment\n"
                                  "model_name: \"my model\"\n"
                                  "max_waiting: 0\n"
                                  "drain_timeout_seconds: 0.5\n"
                                  "prefix_caching: false\n"),
                            &c),
              IsOk());
  EXPECT_EQ(c.model_name, "my model");
  EXPECT_EQ(c.max_waiting, 0);
  EXPECT_EQ(c.drain_timeout_seconds, 0.5);
  EXPECT_FALSE(c.prefix_caching);
}

TEST_F(WorkerConfigTest, EmptyYamlSetsNothing) {
  WorkerConfig c;
  c.port = 1234;
  ASSERT_THAT(ApplyYamlFile(Write("empty.yaml", ""), &c), IsOk());
  ASSERT_THAT(ApplyYamlFile(Write("comments.yaml", "# nothing\n"), &c), IsOk());
  EXPECT_EQ(c.port, 1234);
}

TEST_F(WorkerConfigTest, YamlErrorsNameFileLineAndKey) {
  struct Case {
    std::string name;
    std::string text;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"unknown.yaml", "port: 1\n\nprot: 2\n", "unknown.yaml:3: unknown key 'prot'; known keys: model_path"},
      {"int.yaml", "threads: 2\nport: abc\n", "int.yaml:2: key 'port' needs an integer, got 'abc'"},
      {"float_for_int.yaml", "max_running: 1.5\n",
       "float_for_int.yaml:1: key 'max_running' needs an integer, got '1.5'"},
      {"double.yaml", "drain_timeout_seconds: soon\n", "double.yaml:1: key 'drain_timeout_seconds' needs a number"},
      {"bool.yaml", "prefix_caching: maybe\n", "bool.yaml:1: key 'prefix_caching' needs true or false, got 'maybe'"},
      {"list.yaml", "\nhost: [a, b]\n", "list.yaml:2: key 'host' needs a single value, got a list"},
      {"map.yaml", "host:\n  a: b\n", "map.yaml:2: key 'host' needs a single value, got a mapping"},
      {"null.yaml", "port:\n", "null.yaml:1: key 'port' has no value"},
      {"dup.yaml", "port: 1\nport: 2\n", "dup.yaml:2: duplicate key 'port'"},
      {"top.yaml", "- port: 1\n", "top.yaml:1: the top level must be a mapping"},
      {"scalar.yaml", "just text\n", "scalar.yaml:1: the top level must be a mapping"},
      {"malformed.yaml", "port: 1\nhost: [unterminated\n", "malformed.yaml:3: malformed YAML"},
      {"tabs.yaml", "port: 1\n  host: x\n", "tabs.yaml:2: malformed YAML"},
  };
  for (const Case& t : cases) {
    WorkerConfig c;
    c.port = 4321;
    const absl::Status s = ApplyYamlFile(Write(t.name, t.text), &c);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(t.expected))) << t.name;
    EXPECT_EQ(c.port, 4321) << t.name << ": config changed by a failed load";
  }
}

TEST_F(WorkerConfigTest, MalformedYamlNamesTheLine) {
  WorkerConfig c;
  EXPECT_THAT(ApplyYamlFile(Write("m.yaml", "port: 1\nthreads: 2: 3\n"), &c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("m.yaml:2: malformed YAML: illegal map value")));
  EXPECT_THAT(ApplyYamlFile(Write("flow.yaml", "port: 1\nhost: {a: b\n"), &c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("flow.yaml:3: malformed YAML")));
}

TEST_F(WorkerConfigTest, MissingYamlFile) {
  WorkerConfig c;
  const std::string path = (dir_ / "nope.yaml").string();
  EXPECT_THAT(ApplyYamlFile(path, &c), StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
  EXPECT_THAT(ApplyYamlFile(dir_.string(), &c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
}

// --- Validation ---

TEST_F(WorkerConfigTest, EveryValidationError) {
  struct Case {
    std::function<void(WorkerConfig&)> change;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {[](WorkerConfig& c) { c.model_path = ""; }, "model_path (--model-path) is required"},
      {[](WorkerConfig& c) { c.host = ""; }, "host (--host) must not be empty"},
      {[](WorkerConfig& c) { c.metrics_host = ""; }, "metrics_host (--metrics-host) must not be empty"},
      {[](WorkerConfig& c) { c.port = -1; }, "port (--port) must be in 0..65535, got -1"},
      {[](WorkerConfig& c) { c.port = 65536; }, "port (--port) must be in 0..65535, got 65536"},
      {[](WorkerConfig& c) { c.metrics_port = -2; }, "metrics_port (--metrics-port) must be in -1..65535, got -2"},
      {[](WorkerConfig& c) { c.metrics_port = c.port; }, "metrics_port (--metrics-port) must differ from port"},
      {[](WorkerConfig& c) { c.max_message_bytes = 10; },
       "max_message_bytes (--max-message-bytes) must be in 1024..2147483647, got 10"},
      {[](WorkerConfig& c) { c.threads = -1; }, "threads (--threads) must be in 0..1024, got -1"},
      {[](WorkerConfig& c) { c.max_running = 0; }, "max_running (--max-running) must be in 1..4096, got 0"},
      {[](WorkerConfig& c) { c.max_waiting = -1; }, "max_waiting (--max-waiting) must be in 0..1000000, got -1"},
      {[](WorkerConfig& c) { c.max_step_tokens = 8; },
       "max_step_tokens (--max-step-tokens) must be in max_running..1048576 (one decode per running request), "
       "max_running is 16, got 8"},
      {[](WorkerConfig& c) { c.max_context = -1; }, "max_context (--max-context) must be in 0..16777216, got -1"},
      {[](WorkerConfig& c) { c.max_new_tokens = 0; }, "max_new_tokens (--max-new-tokens) must be >= 1, got 0"},
      {[](WorkerConfig& c) { c.kv_cache_tokens = -1; }, "kv_cache_tokens (--kv-cache-tokens) must be in 0..4294967296"},
      {[](WorkerConfig& c) { c.kv_cache_mb = -1; }, "kv_cache_mb (--kv-cache-mb) must be in 0..16777216, got -1"},
      {[](WorkerConfig& c) { c.kv_cache_type = "int4"; }, "kv_cache_type (--kv-cache-type) must be f16 or q8, got \"int4\""},
      {[](WorkerConfig& c) {
         c.kv_cache_tokens = 4096;
         c.kv_cache_mb = 100;
       },
       "kv_cache_mb (--kv-cache-mb) cannot be combined with kv_cache_tokens (4096), got 100"},
      {[](WorkerConfig& c) { c.kv_cache_tokens = 8; },
       "kv_cache_tokens (--kv-cache-tokens) must hold at least one block of 16 tokens, got 8"},
      {[](WorkerConfig& c) { c.block_size = 0; }, "block_size (--block-size) must be a power of two in 1..256, got 0"},
      {[](WorkerConfig& c) { c.block_size = 24; },
       "block_size (--block-size) must be a power of two in 1..256, got 24"},
      {[](WorkerConfig& c) { c.block_size = 512; },
       "block_size (--block-size) must be a power of two in 1..256, got 512"},
      {[](WorkerConfig& c) { c.drain_timeout_seconds = -0.5; },
       "drain_timeout_seconds (--drain-timeout-seconds) must be in 0..3600, got -0.5"},
      {[](WorkerConfig& c) { c.load_report_interval_ms = 0; },
       "load_report_interval_ms (--load-report-interval-ms) must be in 1..60000, got 0"},
      {[](WorkerConfig& c) { c.log_level = "loud"; },
       "log_level (--log-level) must be debug, info, warning or error, got 'loud'"},
  };
  for (const Case& t : cases) {
    WorkerConfig c = Valid();
    t.change(c);
    EXPECT_THAT(ValidateWorkerConfig(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(t.expected)))
        << t.expected;
  }
}

TEST_F(WorkerConfigTest, ValidationAcceptsBoundaries) {
  WorkerConfig c = Valid();
  c.port = 65535;
  c.metrics_port = -1;  // off
  c.block_size = 1;
  c.max_running = 1;
  c.max_step_tokens = 1;
  c.max_waiting = 0;
  c.kv_cache_mb = 64;
  c.max_context = 512;
  c.drain_timeout_seconds = 0;
  EXPECT_THAT(ValidateWorkerConfig(c), IsOk());
  c.metrics_port = 0;  // ephemeral
  c.metrics_host = "127.0.0.1";
  c.block_size = 256;
  c.max_step_tokens = 256;
  EXPECT_THAT(ValidateWorkerConfig(c), IsOk());
  c.metrics_port = c.port;  // same port, different host
  EXPECT_THAT(ValidateWorkerConfig(c), IsOk());
}

TEST_F(WorkerConfigTest, ValidationListsAllErrors) {
  WorkerConfig c = Valid();
  c.port = -1;
  c.block_size = 3;
  EXPECT_THAT(ValidateWorkerConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                                AllOf(HasSubstr("port (--port)"), HasSubstr("; block_size"))));
}

// --- KV pool size ---

TEST_F(WorkerConfigTest, KvCacheTokens) {
  WorkerConfig c = Valid();
  // Default: max(max_running x 1024, context).
  EXPECT_THAT(ResolveKvCacheTokens(c, 4096, 76800), IsOkAndHolds(16 * 1024));
  c.max_running = 2;
  EXPECT_THAT(ResolveKvCacheTokens(c, 4096, 76800), IsOkAndHolds(4096));
  c.max_context = 4100;  // rounded up to whole blocks
  EXPECT_THAT(ResolveKvCacheTokens(c, 4096, 76800), IsOkAndHolds(4112));
  // Explicit positions, rounded down to whole blocks.
  c.kv_cache_tokens = 1000;
  EXPECT_THAT(ResolveKvCacheTokens(c, 4096, 76800), IsOkAndHolds(992));
  // MiB: 100 MiB / 76800 B = 1365.33 -> 1360 positions.
  c.kv_cache_tokens = 0;
  c.kv_cache_mb = 100;
  EXPECT_THAT(ResolveKvCacheTokens(c, 4096, 76800), IsOkAndHolds(1360));
  c.kv_cache_mb = 1;
  EXPECT_THAT(ResolveKvCacheTokens(c, 4096, 1 << 20),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("less than one block of 16")));
  EXPECT_THAT(ResolveKvCacheTokens(c, 0, 76800), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("context")));
  EXPECT_THAT(ResolveKvCacheTokens(c, 4096, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes per token")));
}

}  // namespace
}  // namespace wf::service
