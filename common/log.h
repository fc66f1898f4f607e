// Minimal leveled logging to stderr, shared by every binary.
//
// Abseil 20220623 has no absl/log, so common/ ships this small logger. Lines
// are "LEVEL YYYY-mm-ddTHH:MM:SS.mmmZ file:line] message". The level is set
// once at start-up (flag or WF_LOG_LEVEL=debug|info|warning|error).
//
// Example:
//   WF_LOG(INFO) << "loaded " << n << " tensors";
#ifndef WF_COMMON_LOG_H_
#define WF_COMMON_LOG_H_

#include <sstream>
#include <string_view>

namespace wf {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses "debug", "info", "warning" or "error"; returns false otherwise.
bool ParseLogLevel(std::string_view name, LogLevel* level);

namespace log_internal {
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace log_internal

}  // namespace wf

#define WF_LOG_LEVEL_DEBUG ::wf::LogLevel::kDebug
#define WF_LOG_LEVEL_INFO ::wf::LogLevel::kInfo
#define WF_LOG_LEVEL_WARNING ::wf::LogLevel::kWarning
#define WF_LOG_LEVEL_ERROR ::wf::LogLevel::kError

#define WF_LOG(level)                                          \
  if (WF_LOG_LEVEL_##level < ::wf::GetLogLevel()) {            \
  } else                                                       \
    ::wf::log_internal::LogMessage(WF_LOG_LEVEL_##level, __FILE__, __LINE__).stream()

#endif  // WF_COMMON_LOG_H_
