#include "libs/logging/logging.h"

#include <glog/logging.h>

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace cnet {
namespace {

TEST(JsonLogTest, FormatsOneObjectPerLineAndEscapes) {
  std::string line = FormatJsonLogLine("2026-01-01T00:00:00.000000Z", "INFO",
                                       "registry", "main.cc", 7,
                                       "say \"hi\"\n\ttab\x01");
  EXPECT_EQ(line,
            "{\"ts\":\"2026-01-01T00:00:00.000000Z\",\"level\":\"INFO\","
            "\"service\":\"registry\",\"file\":\"main.cc\",\"line\":7,"
            "\"msg\":\"say \\\"hi\\\"\\n\\ttab\\u0001\"}\n");
}

TEST(JsonLogTest, LogMacrosWriteJsonLinesToTheFile) {
  std::string path = std::string(::testing::TempDir()) + "/logs/svc.log";
  ASSERT_TRUE(InitLogging("logging_test", "svc", path).ok());
  LOG(INFO) << "first";
  LOG(WARNING) << "second \"quoted\"";
  google::FlushLogFiles(google::GLOG_INFO);
  std::ifstream in(path);
  std::string l1, l2;
  ASSERT_TRUE(std::getline(in, l1));
  ASSERT_TRUE(std::getline(in, l2));
  EXPECT_NE(l1.find("\"level\":\"INFO\""), std::string::npos) << l1;
  EXPECT_NE(l1.find("\"service\":\"svc\""), std::string::npos) << l1;
  EXPECT_NE(l1.find("\"msg\":\"first\""), std::string::npos) << l1;
  EXPECT_NE(l1.find("\"file\":\"logging_test.cc\""), std::string::npos) << l1;
  EXPECT_EQ(l1.front(), '{');
  EXPECT_EQ(l1.back(), '}');
  EXPECT_NE(l2.find("\"level\":\"WARNING\""), std::string::npos) << l2;
  EXPECT_NE(l2.find("second \\\"quoted\\\""), std::string::npos) << l2;
}

}  // namespace
}  // namespace cnet
