// `cnet list` and `cnet call`: grpcurl-style access to any service of the
// suite through server reflection, for rpcs the CLI has no command for.
#include <iostream>

#include "absl/strings/str_join.h"
#include "libs/logging/logging.h"
#include "tools/cnet/cli.h"
#include "tools/cnet/reflection_client.h"

namespace cnet::cli {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace

void AddCallCommands(CLI::App* app, Globals* g) {
  auto addr = std::make_shared<std::string>();
  auto* list = app->add_subcommand("list", "list the services a server offers (reflection)");
  list->add_option("--addr", *addr, "host:port")->required();
  list->footer("Example: cnet list --addr 127.0.0.1:7105");
  list->callback([g, addr] {
    ReflectionClient client(g->Channel(*addr), absl::Seconds(g->timeout_seconds));
    auto names = client.ListServices();
    if (!names.ok()) {
      g->exit_code = ReportError(*g, "list", ToGrpc(names.status()));
      return;
    }
    if (g->json) {
      std::vector<std::string> quoted;
      for (const auto& n : *names) quoted.push_back("\"" + JsonEscape(n) + "\"");
      std::cout << "{\"services\":[" << absl::StrJoin(quoted, ",") << "]}\n";
    } else {
      for (const auto& n : *names) std::cout << n << "\n";
    }
    g->exit_code = kExitOk;
  });

  struct CallFlags {
    std::string addr, method, json;
  };
  auto f = std::make_shared<CallFlags>();
  auto* call = app->add_subcommand("call", "call a unary rpc by name with a JSON request");
  call->add_option("--addr", f->addr, "host:port")->required();
  call->add_option("method", f->method, "pkg.Service/Method")->required();
  call->add_option("request", f->json, "request as JSON (default {})");
  call->footer(
      "Example: cnet call --addr 127.0.0.1:7105 claudenet.v1.ConfigService/GetConfig "
      "'{\"key_prefix\":\"network\"}'\n"
      "The --token credential (or CNET_TOKEN) is sent as authorization: Bearer.");
  call->callback([g, f] {
    ReflectionClient client(g->Channel(f->addr), absl::Seconds(g->timeout_seconds));
    std::vector<std::pair<std::string, std::string>> md;
    if (!g->token.empty()) md.push_back({"authorization", "Bearer " + g->token});
    auto out = client.CallUnary(f->method, f->json, md);
    if (!out.ok()) {
      g->exit_code = ReportError(*g, "call " + f->method, ToGrpc(out.status()));
      return;
    }
    std::cout << *out << "\n";
    g->exit_code = kExitOk;
  });
}

}  // namespace cnet::cli
