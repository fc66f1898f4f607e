// Router settings from flags and YAML: defaults are valid, the file fills what
// the command line leaves out, and a bad value names its key.
#include "router/server/router_config.h"

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/flags.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::router {
namespace {

using ::testing::HasSubstr;
using ::wf::testing::StatusIs;

absl::StatusOr<RouterConfig> Resolve(std::vector<std::string> args) {
  RouterConfig config;
  FlagSet flags("wf_router");
  RegisterRouterFlags(&flags, &config);
  args.insert(args.begin(), "wf_router");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  if (absl::Status s = flags.Parse(static_cast<int>(argv.size()), argv.data()); !s.ok()) return s;
  return ResolveRouterConfig(flags, config);
}

TEST(RouterConfigTest, DefaultsWithOneWorkerAreValid) {
  ASSERT_OK_AND_ASSIGN(RouterConfig c, Resolve({"--workers", "127.0.0.1:1,127.0.0.1:2"}));
  EXPECT_EQ(c.workers, (std::vector<std::string>{"127.0.0.1:1", "127.0.0.1:2"}));
  EXPECT_EQ(c.stall_timeout_seconds, 1);
  EXPECT_EQ(c.max_retries, 2);
}

TEST(RouterConfigTest, BadValuesNameTheirKey) {
  EXPECT_THAT(Resolve({}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--workers")));
  EXPECT_THAT(Resolve({"--workers", "a:1", "--stall-timeout-seconds", "-1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stall_timeout_seconds (--stall-timeout-seconds)")));
  EXPECT_THAT(Resolve({"--workers", "a:1", "--max-retries", "99"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_retries")));
}

TEST(RouterConfigTest, FileFillsWhatFlagsLeaveOut) {
  char path[] = "/tmp/wf_router_config_test_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string yaml = "workers: [\"h:1\", \"h:2\"]\nstall_timeout_seconds: 0\nmax_retries: 1\n";
  ASSERT_EQ(write(fd, yaml.data(), yaml.size()), static_cast<ssize_t>(yaml.size()));
  close(fd);
  ASSERT_OK_AND_ASSIGN(RouterConfig c, Resolve({"--config", path, "--max-retries", "3"}));
  EXPECT_EQ(c.workers, (std::vector<std::string>{"h:1", "h:2"}));
  EXPECT_EQ(c.stall_timeout_seconds, 0);  // the watchdog off, from the file
  EXPECT_EQ(c.max_retries, 3);            // the flag wins
  std::remove(path);
}

}  // namespace
}  // namespace wf::router
