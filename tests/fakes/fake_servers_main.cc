// Standalone runner for the Firebase and GitHub fakes, for end-to-end tests
// written outside C++ (Python suites) or manual runs. Listens on 127.0.0.1
// only. Prints one JSON line on stdout once everything listens:
//   {"firebase_url": "...", "github_url": "...", "control_url": "..."}
// and runs until SIGINT/SIGTERM or stdin closes (so a dying parent stops it).
//
// Flags: --firebase_secret=S --github_token=T --github_owner=O
//        --github_repo=R --keepalive_ms=N --redirect_first_stream
//
// Control API (GET on control_url, answers JSON):
//   /firebase/fail?status=503[&count=N]  every (or the next N) request(s) fail
//   /firebase/clear                      clear failures and latency
//   /firebase/refuse?on=1|0              close/reopen the listener
//   /firebase/latency?ms=N               added latency per request
//   /firebase/drop_streams | /firebase/cancel | /firebase/auth_revoked
//   /firebase/get?path=P                 value at P
//   /firebase/set?path=P&value=JSON      write (streams notified)
//   /firebase/counters                   requests, writes, open streams
//   /github/fail?status=403&count=N[&retry_after=S]
//   /github/exhaust?reset_s=S | /github/clear
//   /github/issues                       every issue (incl. comments)
//   /github/add_pr?title=T&labels=a,b    a pull request in the issue list
//   /github/counters                     requests, not_modified, remaining
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/fakes/firebase_fake.h"
#include "tests/fakes/github_fake.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop = true; }

std::string Flag(int argc, char** argv, const char* name, const char* def) {
  std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
  }
  return def;
}

bool HasFlag(int argc, char** argv, const char* name) {
  std::string f = std::string("--") + name;
  for (int i = 1; i < argc; ++i) {
    if (f == argv[i]) return true;
  }
  return false;
}

int IntParam(const httplib::Request& req, const char* name, int def) {
  int v = def;
  if (req.has_param(name) && !absl::SimpleAtoi(req.get_param_value(name), &v)) return def;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using nlohmann::json;
  cnet::fakes::FirebaseFake::Options fo;
  fo.secret = Flag(argc, argv, "firebase_secret", "");
  int keepalive_ms = 30000;
  absl::SimpleAtoi(Flag(argc, argv, "keepalive_ms", "30000"), &keepalive_ms);
  fo.keepalive_interval = absl::Milliseconds(keepalive_ms);
  fo.redirect_first_stream = HasFlag(argc, argv, "redirect_first_stream");
  cnet::fakes::FirebaseFake fb(fo);
  cnet::fakes::GitHubFake::Options go;
  go.token = Flag(argc, argv, "github_token", "gh-test-token");
  go.owner = Flag(argc, argv, "github_owner", "acme");
  go.repo = Flag(argc, argv, "github_repo", "net");
  cnet::fakes::GitHubFake gh(go);
  if (!fb.Start().ok() || !gh.Start().ok()) {
    std::fprintf(stderr, "fake_servers: cannot listen on 127.0.0.1\n");
    return 1;
  }
  if (fo.redirect_first_stream) fb.RedirectNextStream();

  httplib::Server control;
  auto ok = [](httplib::Response& res, const json& j) {
    res.set_content(j.dump(), "application/json");
  };
  control.Get("/firebase/fail", [&](const httplib::Request& req, httplib::Response& res) {
    int status = IntParam(req, "status", 503);
    if (req.has_param("count")) {
      fb.FailNext(status, IntParam(req, "count", 1));
    } else {
      fb.FailAllWith(status);
    }
    ok(res, {{"ok", true}});
  });
  control.Get("/firebase/clear", [&](const httplib::Request&, httplib::Response& res) {
    fb.ClearFailures();
    fb.SetLatency(absl::ZeroDuration());
    ok(res, {{"ok", true}});
  });
  control.Get("/firebase/refuse", [&](const httplib::Request& req, httplib::Response& res) {
    auto s = fb.SetRefuseConnections(req.get_param_value("on") == "1");
    ok(res, {{"ok", s.ok()}});
  });
  control.Get("/firebase/latency", [&](const httplib::Request& req, httplib::Response& res) {
    fb.SetLatency(absl::Milliseconds(IntParam(req, "ms", 0)));
    ok(res, {{"ok", true}});
  });
  control.Get("/firebase/drop_streams", [&](const httplib::Request&, httplib::Response& res) {
    fb.DropStreams();
    ok(res, {{"ok", true}});
  });
  control.Get("/firebase/cancel", [&](const httplib::Request&, httplib::Response& res) {
    fb.SendCancel();
    ok(res, {{"ok", true}});
  });
  control.Get("/firebase/auth_revoked", [&](const httplib::Request&, httplib::Response& res) {
    fb.SendAuthRevoked();
    ok(res, {{"ok", true}});
  });
  control.Get("/firebase/get", [&](const httplib::Request& req, httplib::Response& res) {
    ok(res, fb.Get(req.get_param_value("path")));
  });
  control.Get("/firebase/set", [&](const httplib::Request& req, httplib::Response& res) {
    json v = json::parse(req.get_param_value("value"), nullptr, false);
    if (v.is_discarded()) {
      res.status = 400;
      ok(res, {{"error", "value is not JSON"}});
      return;
    }
    fb.Set(req.get_param_value("path"), v);
    ok(res, {{"ok", true}});
  });
  control.Get("/firebase/counters", [&](const httplib::Request&, httplib::Response& res) {
    ok(res, {{"requests", fb.requests()},
             {"stream_requests", fb.stream_requests()},
             {"open_streams", fb.open_streams()},
             {"writes", fb.writes()}});
  });
  control.Get("/github/fail", [&](const httplib::Request& req, httplib::Response& res) {
    gh.FailNext(IntParam(req, "status", 503), IntParam(req, "count", 1),
                IntParam(req, "retry_after", -1));
    ok(res, {{"ok", true}});
  });
  control.Get("/github/exhaust", [&](const httplib::Request& req, httplib::Response& res) {
    gh.ExhaustRateLimit(absl::Seconds(IntParam(req, "reset_s", 60)));
    ok(res, {{"ok", true}});
  });
  control.Get("/github/clear", [&](const httplib::Request&, httplib::Response& res) {
    gh.ClearFailures();
    ok(res, {{"ok", true}});
  });
  control.Get("/github/add_pr", [&](const httplib::Request& req, httplib::Response& res) {
    std::vector<std::string> labels =
        absl::StrSplit(req.get_param_value("labels"), ',', absl::SkipEmpty());
    ok(res, {{"number", gh.AddIssue(req.get_param_value("title"), "", labels, true)}});
  });
  control.Get("/github/issues", [&](const httplib::Request&, httplib::Response& res) {
    json arr = json::array();
    for (const auto& i : gh.Issues()) {
      arr.push_back({{"number", i.number},
                     {"title", i.title},
                     {"body", i.body},
                     {"labels", i.labels},
                     {"state", i.state},
                     {"pull_request", i.pull_request},
                     {"comments", i.comments}});
    }
    ok(res, arr);
  });
  control.Get("/github/counters", [&](const httplib::Request&, httplib::Response& res) {
    ok(res, {{"requests", gh.requests()},
             {"not_modified", gh.not_modified()},
             {"rate_remaining", gh.rate_remaining()}});
  });
  int control_port = control.bind_to_any_port("127.0.0.1");
  if (control_port <= 0) return 1;
  std::thread control_thread([&] { control.listen_after_bind(); });

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGPIPE, SIG_IGN);
  json ready = {{"firebase_url", fb.url()},
                {"github_url", gh.url()},
                {"control_url", "http://127.0.0.1:" + std::to_string(control_port)}};
  std::printf("%s\n", ready.dump().c_str());
  std::fflush(stdout);
  while (!g_stop) {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    int r = poll(&p, 1, 200);
    if (r > 0) {
      char buf[256];
      if (read(STDIN_FILENO, buf, sizeof(buf)) <= 0) break;  // parent went away
    }
  }
  control.stop();
  control_thread.join();
  fb.Stop();
  gh.Stop();
  return 0;
}
