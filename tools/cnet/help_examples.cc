// Examples for the --help of the top level and of the command groups
// (every leaf command sets its own footer where it is defined). Called
// once every group is registered.
#include <string>

#include "tools/cnet/common.h"

namespace cnet::cli {
namespace {

void AddExample(CLI::App* app, const std::string& example) {
  if (app == nullptr) return;
  std::string footer = app->get_footer();
  if (footer.find("Example") != std::string::npos) return;
  app->footer(footer.empty() ? example : footer + "\n" + example);
}

CLI::App* Find(CLI::App* app, const std::string& name) {
  try {
    return app->get_subcommand(name);
  } catch (const CLI::OptionNotFound&) {
    return nullptr;
  }
}

}  // namespace

void AddHelpExamples(CLI::App* app) {
  AddExample(app,
             "Example: cnet up && cnet agent join --name me -c python && cnet monitor\n"
             "Credentials, JSON shapes and exit codes: docs/cli.md");
  AddExample(Find(app, "agent"), "Example: cnet agent join --name reviewer -c review; "
                                 "cnet agent run --exec ./on_event.sh");
  AddExample(Find(app, "msg"), "Example: cnet msg send agent-01j... 'tests pass' -s CI; "
                               "cnet msg watch");
  AddExample(Find(app, "task"), "Example: cnet task create 'Fix flaky test' -c python; "
                                "cnet task claim --wait 30");
  AddExample(Find(app, "config"), "Example: cnet config show network");
  AddExample(Find(app, "hook"),
             "Example: echo '{\"hook_event_name\":\"SessionStart\"}' | cnet hook session-start");
  if (CLI::App* hooks = Find(app, "hooks")) {
    AddExample(hooks, "Example: cnet hooks install --project .");
    AddExample(Find(hooks, "install"), "Example: cnet hooks install --project . --git");
  }
  AddExample(Find(app, "mcp"), "Example: claude mcp add cnet -- cnet mcp");
  AddExample(Find(app, "reservations"), "Example: cnet reservations --mine");
  if (CLI::App* skill = Find(app, "skill")) {
    AddExample(skill, "Example: cnet skill run network_onboarding; cnet skill stats");
    AddExample(Find(skill, "list"), "Example: cnet skill list --category core");
    AddExample(Find(skill, "show"), "Example: cnet skill show network_onboarding");
  }
}

}  // namespace cnet::cli
