// A grpcurl-like client: discovers services and their message types through
// server reflection (grpc.reflection.v1alpha), then calls a unary method by
// name with a JSON request, without any generated code. Used by `cnet call`
// and `cnet list`, and by the tests that check every binary is
// grpcurl-ready.
#ifndef CNET_TOOLS_CNET_REFLECTION_CLIENT_H_
#define CNET_TOOLS_CNET_REFLECTION_CLIENT_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cnet::cli {

class ReflectionClient {
 public:
  ReflectionClient(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}

  // Fully qualified names of the services the server offers.
  absl::StatusOr<std::vector<std::string>> ListServices();

  // The descriptor of a service (loaded with every file it depends on).
  absl::StatusOr<const google::protobuf::ServiceDescriptor*> FindService(
      const std::string& name);

  // Calls "pkg.Service/Method" (or "pkg.Service.Method") with a JSON
  // request; returns the JSON response. Extra metadata is sent as given.
  // Only unary methods. gRPC errors come back as absl statuses, code kept.
  absl::StatusOr<std::string> CallUnary(
      const std::string& method, const std::string& json_request,
      const std::vector<std::pair<std::string, std::string>>& metadata = {});

 private:
  absl::Status LoadSymbol(const std::string& symbol);

  std::shared_ptr<grpc::Channel> channel_;
  absl::Duration timeout_;
  google::protobuf::SimpleDescriptorDatabase db_;
  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  google::protobuf::DynamicMessageFactory factory_;
};

}  // namespace cnet::cli

#endif  // CNET_TOOLS_CNET_REFLECTION_CLIENT_H_
