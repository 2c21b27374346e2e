#include "libs/server/server.h"

#include <grpcpp/grpcpp.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"

namespace cnet {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

HealthCheckResponse::ServingStatus Check(Health::Stub* stub, const std::string& name,
                                         grpc::StatusCode* code) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckRequest req;
  req.set_service(name);
  HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  *code = s.error_code();
  return resp.status();
}

TEST(GrpcServerTest, PortZeroHealthAndReflection) {
  ServerOptions options;
  options.name = "test";
  options.health_names = {"claudenet.v1.Example"};
  auto server = GrpcServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  EXPECT_EQ((*server)->address(), "127.0.0.1:" + std::to_string((*server)->port()));

  auto channel = MakeChannel((*server)->address());
  auto health = Health::NewStub(channel);
  grpc::StatusCode code;
  EXPECT_EQ(Check(health.get(), "", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  EXPECT_EQ(Check(health.get(), "claudenet.v1.Example", &code), HealthCheckResponse::SERVING);
  Check(health.get(), "no.such.Service", &code);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);

  // Reflection answers and lists at least the health service.
  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = reflection->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::vector<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
  EXPECT_NE(std::find(names.begin(), names.end(), "grpc.health.v1.Health"), names.end());
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(GrpcServerTest, ShutdownStopsServingAndIsIdempotent) {
  ServerOptions options;
  options.name = "test";
  auto server = GrpcServer::Start(std::move(options));
  ASSERT_TRUE(server.ok());
  std::string address = (*server)->address();
  (*server)->Shutdown(absl::Seconds(1));
  (*server)->Shutdown(absl::Seconds(1));
  auto health = Health::NewStub(MakeChannel(address));
  grpc::StatusCode code;
  Check(health.get(), "", &code);
  EXPECT_EQ(code, grpc::StatusCode::UNAVAILABLE);
}

TEST(GrpcServerTest, BindFailureNamesTheAddress) {
  ServerOptions first;
  first.name = "a";
  auto a = GrpcServer::Start(std::move(first));
  ASSERT_TRUE(a.ok());
  ServerOptions second;
  second.name = "b";
  second.listen_address = (*a)->address();
  auto b = GrpcServer::Start(std::move(second));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find((*a)->address()), std::string::npos);
}

}  // namespace
}  // namespace cnet
