// TLS and mutual TLS over real sockets, with certificates made by
// tools/make_certs.sh.
#include "libs/server/tls.h"

#include <cstdlib>
#include <fstream>

#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/server/server.h"

namespace cnet {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::string(getenv("TEST_TMPDIR")) + "/certs");
    std::string cmd = "bash tools/make_certs.sh " + *dir_ + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  config::Config Load(std::map<std::string, std::string> env) {
    config::LoadOptions options;
    options.env = std::move(env);
    auto c = config::Load(options);
    EXPECT_TRUE(c.ok()) << c.status();
    return *c;
  }

  std::map<std::string, std::string> TlsEnv(bool mutual) {
    std::map<std::string, std::string> env = {
        {"CNET_SECURITY__TLS__ENABLED", "true"},
        {"CNET_SECURITY__TLS__CERT_FILE", *dir_ + "/server.pem"},
        {"CNET_SECURITY__TLS__KEY_FILE", *dir_ + "/server.key"},
        {"CNET_SECURITY__TLS__CA_FILE", *dir_ + "/ca.pem"}};
    if (mutual) env["CNET_SECURITY__TLS__REQUIRE_CLIENT_CERT"] = "true";
    return env;
  }

  std::unique_ptr<GrpcServer> Serve(const config::Config& c) {
    auto creds = ServerCredentialsFromConfig(c, "127.0.0.1:0");
    EXPECT_TRUE(creds.ok()) << creds.status();
    ServerOptions options;
    options.name = "tls-test";
    options.credentials = *creds;
    auto server = GrpcServer::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    return std::move(*server);
  }

  grpc::StatusCode Check(const std::string& address,
                         std::shared_ptr<grpc::ChannelCredentials> creds) {
    auto stub = grpc::health::v1::Health::NewStub(MakeChannel(address, creds));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    return stub->Check(&ctx, req, &resp).error_code();
  }

  static std::string* dir_;
};
std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, TlsServerRefusesPlaintextAndServesTlsClients) {
  auto server = Serve(Load(TlsEnv(false)));
  EXPECT_EQ(Check(server->address(), grpc::InsecureChannelCredentials()),
            grpc::StatusCode::UNAVAILABLE);
  auto client = ChannelCredentialsFromConfig(Load({
      {"CNET_SECURITY__TLS__ENABLED", "true"},
      {"CNET_SECURITY__TLS__CERT_FILE", *dir_ + "/server.pem"},
      {"CNET_SECURITY__TLS__KEY_FILE", *dir_ + "/server.key"},
      {"CNET_SECURITY__TLS__CA_FILE", *dir_ + "/ca.pem"}}));
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(Check(server->address(), *client), grpc::StatusCode::OK);
}

TEST_F(TlsTest, MutualTlsRefusesAClientWithoutCertificate) {
  auto server = Serve(Load(TlsEnv(true)));
  grpc::SslCredentialsOptions no_cert;
  std::ifstream ca(*dir_ + "/ca.pem");
  no_cert.pem_root_certs.assign(std::istreambuf_iterator<char>(ca), {});
  EXPECT_NE(Check(server->address(), grpc::SslCredentials(no_cert)), grpc::StatusCode::OK);
  auto with_cert = ChannelCredentialsFromConfig(Load({
      {"CNET_SECURITY__TLS__ENABLED", "true"},
      {"CNET_SECURITY__TLS__CERT_FILE", *dir_ + "/client.pem"},
      {"CNET_SECURITY__TLS__KEY_FILE", *dir_ + "/client.key"},
      {"CNET_SECURITY__TLS__CA_FILE", *dir_ + "/ca.pem"}}));
  ASSERT_TRUE(with_cert.ok());
  EXPECT_EQ(Check(server->address(), *with_cert), grpc::StatusCode::OK);
}

TEST_F(TlsTest, MutualTlsRefusesAClientCertificateFromAnotherCa) {
  const std::string other = std::string(getenv("TEST_TMPDIR")) + "/other-ca";
  ASSERT_EQ(std::system(("bash tools/make_certs.sh " + other + " >/dev/null").c_str()), 0);
  auto server = Serve(Load(TlsEnv(true)));
  // A well-formed client certificate, signed by a CA the server does not
  // trust (the client trusts the server's CA, so only the server refuses).
  grpc::SslCredentialsOptions foreign;
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  foreign.pem_root_certs = read(*dir_ + "/ca.pem");
  foreign.pem_cert_chain = read(other + "/client.pem");
  foreign.pem_private_key = read(other + "/client.key");
  EXPECT_NE(Check(server->address(), grpc::SslCredentials(foreign)), grpc::StatusCode::OK);
}

TEST_F(TlsTest, PlaintextOffLoopbackNeedsAllowInsecure) {
  auto refused = ServerCredentialsFromConfig(Load({}), "0.0.0.0:7101");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("0.0.0.0:7101"), std::string::npos);
  EXPECT_TRUE(ServerCredentialsFromConfig(Load({}), "127.0.0.1:7101").ok());
  EXPECT_TRUE(ServerCredentialsFromConfig(Load({}), "localhost:7101").ok());
  EXPECT_TRUE(ServerCredentialsFromConfig(
                  Load({{"CNET_SECURITY__ALLOW_INSECURE", "true"}}), "0.0.0.0:7101")
                  .ok());
}

TEST_F(TlsTest, UnreadableCertificateNamesTheKey) {
  auto env = TlsEnv(false);
  env["CNET_SECURITY__TLS__CERT_FILE"] = *dir_ + "/missing.pem";
  auto creds = ServerCredentialsFromConfig(Load(env), "127.0.0.1:0");
  ASSERT_FALSE(creds.ok());
  EXPECT_NE(creds.status().message().find("security.tls.cert_file"), std::string::npos);
}

}  // namespace
}  // namespace cnet
