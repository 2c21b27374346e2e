// Runs one local command for the `shell` action: no shell interpretation
// (argv is passed as is), a clean environment (PATH and LANG only, so the
// service's secrets never reach the child), its own process group (killed
// as a whole on cancellation), stdin from a string, stdout and stderr
// captured up to a cap each (the rest is drained and dropped).
#ifndef CNET_SERVICES_SKILLS_SHELL_H_
#define CNET_SERVICES_SKILLS_SHELL_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cnet::skills {

struct ShellResult {
  int exit_code = 0;     // 128 + signal when killed by a signal
  std::string stdout_text;
  std::string stderr_text;
  bool truncated = false;  // some output went past the cap
};

// NOT_FOUND when the program cannot be started; CANCELLED when `on_cancel`'s
// hook fired (the process group was killed).
// `on_started` (may be null) runs once the process exists, with its pid.
absl::StatusOr<ShellResult> RunCommand(const std::vector<std::string>& argv,
                                       const std::string& stdin_text, const std::string& cwd,
                                       size_t output_cap,
                                       const std::function<void(std::function<void()>)>& on_cancel,
                                       const std::function<void(int pid)>& on_started = nullptr);

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_SHELL_H_
