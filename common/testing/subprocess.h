// Test helper: run a real program as a child process (servers, CLIs).
//
// Example:
//   ChildProcess hub;
//   ASSERT_THAT(hub.Start({"python3", "tests/fake_hf_hub.py", "--root", dir}), IsOk());
//   ASSERT_OK_AND_ASSIGN(std::string line, hub.ReadLine(absl::Seconds(30)));  // "PORT 41234"
//   ...
//   hub.Stop();  // SIGTERM, then reaps; also done by the destructor.
//
//   CommandResult r = RunCommand({"build/converter/wf_convert", "--help"});
//   EXPECT_EQ(r.exit_code, 0);
#ifndef WF_COMMON_TESTING_SUBPROCESS_H_
#define WF_COMMON_TESTING_SUBPROCESS_H_

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace wf::testing {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess() { Stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts args[0] (searched in PATH) with its stdout on a pipe we read;
  // stderr stays the test's. `env` entries ("K=V") are added to the environment.
  absl::Status Start(std::vector<std::string> args, std::vector<std::string> env = {}) {
    int out[2];
    if (::pipe(out) != 0) return absl::InternalError("pipe failed");
    std::vector<char*> argv;  // Built before fork: the child only execs.
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) return absl::InternalError("fork failed");
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      for (std::string& e : env) ::putenv(e.data());
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_fd_ = out[0];
    return absl::OkStatus();
  }

  // Reads one line of the child's stdout, waiting at most `timeout`.
  absl::StatusOr<std::string> ReadLine(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (buffer_.find('\n') == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return absl::DeadlineExceededError("no line from child in time: '" + buffer_ + "'");
      pollfd pfd{out_fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out_fd_, buf, sizeof(buf));
      if (n <= 0) return absl::UnavailableError("child closed stdout: '" + buffer_ + "'");
      buffer_.append(buf, static_cast<size_t>(n));
    }
    const size_t nl = buffer_.find('\n');
    std::string line = buffer_.substr(0, nl);
    buffer_.erase(0, nl + 1);
    return line;
  }

  // Sends `sig` and reaps the child; returns its wait status (or -1).
  int Stop(int sig = SIGTERM) {
    int status = -1;
    if (pid_ > 0) {
      ::kill(pid_, sig);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (out_fd_ >= 0) {
      ::close(out_fd_);
      out_fd_ = -1;
    }
    return status;
  }

  // Sends `sig`, waits up to `timeout` for the child to exit, then kills it
  // (SIGKILL). Returns the wait status; `*exited_in_time` says whether it
  // left on its own.
  int StopWithin(int sig, std::chrono::milliseconds timeout, bool* exited_in_time = nullptr) {
    int status = -1;
    bool in_time = false;
    if (pid_ > 0) {
      ::kill(pid_, sig);
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (true) {
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
          in_time = true;
          break;
        }
        if (r < 0 || std::chrono::steady_clock::now() >= deadline) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          break;
        }
        ::usleep(10000);
      }
      pid_ = -1;
    }
    if (out_fd_ >= 0) {
      ::close(out_fd_);
      out_fd_ = -1;
    }
    if (exited_in_time != nullptr) *exited_in_time = in_time;
    return status;
  }

  // Sends a signal without waiting (e.g. SIGSTOP / SIGCONT).
  void Signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
};

struct CommandResult {
  int exit_code = -1;  // -1 if it did not exit normally.
  std::string output;  // stdout and stderr, interleaved.
};

// Runs a command to completion (bounded by `timeout_seconds` through
// coreutils timeout) and captures its output.
inline CommandResult RunCommand(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                                int timeout_seconds = 600) {
  std::string cmd = absl::StrCat("timeout ", timeout_seconds, " env");
  for (const std::string& e : env) absl::StrAppend(&cmd, " '", e, "'");
  for (const std::string& a : args) absl::StrAppend(&cmd, " '", a, "'");
  absl::StrAppend(&cmd, " 2>&1");
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

}  // namespace wf::testing

#endif  // WF_COMMON_TESTING_SUBPROCESS_H_
