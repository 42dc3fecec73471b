#include "common/server/library_logs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "grpc/grpc.h"
#include "grpc/support/log.h"
#include "gtest/gtest.h"
#include "policy/keys/v1/keys.pb.h"

namespace policy::server {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// The lines written to stderr while `write` runs.
template <typename F>
std::vector<std::string> StderrLines(F write) {
  testing::TempDir dir;
  const std::string path = dir.File("stderr");
  std::fflush(stderr);
  const int saved = dup(2);
  const int file = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(file, 2);
  close(file);
  write();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> lines = absl::StrSplit(text.str(), '\n', absl::SkipEmpty());
  return lines;
}

// GetKeyRequest with key_id (field 1, a proto3 string) holding invalid UTF-8.
bool ParseInvalidUtf8() {
  keys::v1::GetKeyRequest request;
  return request.ParseFromString(std::string("\x0a\x02\xc3\x28", 4));
}

class LibraryLogsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    RouteLibraryLogs();
    grpc_init();  // As a server has by the time anything logs.
  }
};

TEST_F(LibraryLogsTest, ProtobufLinesAreStructuredAndNameTheField) {
  std::vector<std::string> lines = StderrLines([] { EXPECT_FALSE(ParseInvalidUtf8()); });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], AllOf(StartsWith("{\"time\":\""), HasSubstr("\"level\":\"error\""),
                              HasSubstr("policy.keys.v1.GetKeyRequest.key_id"),
                              HasSubstr("\"source\":\"protobuf\""),
                              HasSubstr("\"at\":\"google/protobuf/"), Not(HasSubstr("dropped"))));
  EXPECT_EQ(lines[0].back(), '}');
}

TEST_F(LibraryLogsTest, GrpcLinesAreStructured) {
  std::vector<std::string> lines =
      StderrLines([] { gpr_log(GPR_ERROR, "something in %s went wrong\n", "transport"); });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0],
              AllOf(HasSubstr("\"level\":\"error\""),
                    HasSubstr("\"msg\":\"something in transport went wrong\""),
                    HasSubstr("\"source\":\"grpc\""), HasSubstr("library_logs_test.cc:")));
}

TEST_F(LibraryLogsTest, AFloodOfLibraryLinesIsBounded) {
  std::vector<std::string> lines = StderrLines([] {
    for (int i = 0; i < 50; ++i) ParseInvalidUtf8();
  });
  // The 50 parses may straddle a second.
  EXPECT_GE(lines.size(), 1u);
  EXPECT_LE(lines.size(), 2u * kLibraryLinesPerSecond);
}

}  // namespace
}  // namespace policy::server
