#include "common/status/status.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status/grpc_status.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace policy {
namespace {

constexpr char kErrorInfoTypeUrl[] = "type.googleapis.com/google.rpc.ErrorInfo";
constexpr char kHiddenMessage[] = "internal error; see the server log";

// --- WithReason / ReasonOf / WithoutReason ----------------------------------------------

TEST(ReasonTest, WithReasonAttachesReasonAndKeepsCodeAndMessage) {
  absl::Status status = WithReason(absl::NotFoundError("key k1 not found"), "KEY_NOT_FOUND");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "key k1 not found");
  EXPECT_EQ(ReasonOf(status), std::optional<std::string>("KEY_NOT_FOUND"));
}

TEST(ReasonTest, StatusWithoutReasonHasNone) {
  EXPECT_EQ(ReasonOf(absl::NotFoundError("x")), std::nullopt);
  EXPECT_EQ(ReasonOf(absl::OkStatus()), std::nullopt);
}

TEST(ReasonTest, OkStatusGetsNoReason) {
  absl::Status status = WithReason(absl::OkStatus(), "SHOULD_NOT_STICK");
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(ReasonOf(status), std::nullopt);
  EXPECT_EQ(status, absl::OkStatus());
}

TEST(ReasonTest, WithReasonReplacesAnEarlierReason) {
  absl::Status status = WithReason(WithReason(absl::AbortedError("x"), "FIRST"), "SECOND");
  EXPECT_EQ(ReasonOf(status), std::optional<std::string>("SECOND"));
}

TEST(ReasonTest, WithoutReasonRemovesOnlyTheReason) {
  absl::Status status = WithReason(absl::PermissionDeniedError("denied"), "KEY_REVOKED");
  absl::Status stripped = WithoutReason(status);
  EXPECT_EQ(stripped.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(stripped.message(), "denied");
  EXPECT_EQ(ReasonOf(stripped), std::nullopt);
  EXPECT_EQ(stripped, absl::PermissionDeniedError("denied"));
  // The original is a value and keeps its reason.
  EXPECT_EQ(ReasonOf(status), std::optional<std::string>("KEY_REVOKED"));
  EXPECT_TRUE(WithoutReason(absl::OkStatus()).ok());
}

// --- RETURN_IF_ERROR / ASSIGN_OR_RETURN ---------------------------------------------------

absl::Status ReturnIfErrorHelper(absl::Status first, int* reached, int* evaluations) {
  RETURN_IF_ERROR((++*evaluations, first));
  ++*reached;
  return absl::OkStatus();
}

TEST(MacroTest, ReturnIfErrorPassesOkThrough) {
  int reached = 0;
  int evaluations = 0;
  EXPECT_TRUE(ReturnIfErrorHelper(absl::OkStatus(), &reached, &evaluations).ok());
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(evaluations, 1);
}

TEST(MacroTest, ReturnIfErrorReturnsTheErrorUnchangedAndEvaluatesOnce) {
  int reached = 0;
  int evaluations = 0;
  absl::Status error = WithReason(absl::UnavailableError("db down"), "DB_DOWN");
  absl::Status result = ReturnIfErrorHelper(error, &reached, &evaluations);
  EXPECT_EQ(result, error);
  EXPECT_EQ(ReasonOf(result), std::optional<std::string>("DB_DOWN"));
  EXPECT_EQ(reached, 0);
  EXPECT_EQ(evaluations, 1);
}

absl::StatusOr<std::unique_ptr<int>> MakeInt(absl::StatusOr<int> v) {
  if (!v.ok()) return v.status();
  return std::make_unique<int>(*v);
}

absl::StatusOr<int> AssignDeclares(absl::StatusOr<int> v, bool* reached) {
  ASSIGN_OR_RETURN(std::unique_ptr<int> p, MakeInt(v));  // Move-only value.
  *reached = true;
  return *p + 1;
}

absl::Status AssignExisting(absl::StatusOr<int> a, absl::StatusOr<int> b, int* out) {
  int x = -1;
  ASSIGN_OR_RETURN(x, a);
  *out = x;
  ASSIGN_OR_RETURN(x, b);  // Second use in one function: distinct hidden names.
  *out = x;
  return absl::OkStatus();
}

TEST(MacroTest, AssignOrReturnDeclaresFromValue) {
  bool reached = false;
  absl::StatusOr<int> result = AssignDeclares(41, &reached);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, 42);
  EXPECT_TRUE(reached);
}

TEST(MacroTest, AssignOrReturnReturnsTheError) {
  bool reached = false;
  absl::StatusOr<int> result =
      AssignDeclares(WithReason(absl::InvalidArgumentError("bad"), "BAD"), &reached);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "bad");
  EXPECT_EQ(ReasonOf(result.status()), std::optional<std::string>("BAD"));
  EXPECT_FALSE(reached);
}

TEST(MacroTest, AssignOrReturnAssignsExistingVariable) {
  int out = 0;
  EXPECT_TRUE(AssignExisting(7, 8, &out).ok());
  EXPECT_EQ(out, 8);

  out = 0;
  absl::Status status = AssignExisting(7, absl::NotFoundError("gone"), &out);
  EXPECT_EQ(status, absl::NotFoundError("gone"));
  EXPECT_EQ(out, 7);  // The first assignment happened, the second did not.
}

// --- ToGrpcStatus / FromGrpcStatus --------------------------------------------------------

TEST(GrpcStatusTest, OkIsOk) {
  grpc::Status status = ToGrpcStatus(absl::OkStatus(), "keys.policy-suite");
  EXPECT_TRUE(status.ok());
  EXPECT_TRUE(status.error_details().empty());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(GrpcStatusTest, CallerErrorsKeepCodeAndMessage) {
  const absl::Status cases[] = {
      absl::InvalidArgumentError("name must not be empty"),
      absl::NotFoundError("key k1 not found"),
      absl::AlreadyExistsError("key k1 exists"),
      absl::PermissionDeniedError("not yours"),
      absl::FailedPreconditionError("key is revoked"),
      absl::ResourceExhaustedError("slow down"),
      absl::UnavailableError("database unavailable"),
      absl::UnauthenticatedError("who are you"),
      absl::DeadlineExceededError("too slow"),
      absl::AbortedError("retry"),
  };
  for (const absl::Status& in : cases) {
    SCOPED_TRACE(in.ToString());
    grpc::Status out = ToGrpcStatus(in, "keys.policy-suite");
    EXPECT_EQ(static_cast<int>(out.error_code()), static_cast<int>(in.code()));
    EXPECT_EQ(out.error_message(), in.message());
    EXPECT_TRUE(out.error_details().empty());  // No reason, no details.
  }
}

TEST(GrpcStatusTest, ServerFaultsHideTheirMessage) {
  const absl::Status cases[] = {
      absl::InternalError("database error 42P01: relation \"secret_table\" does not exist"),
      absl::UnknownError("password=hunter2"),
      absl::DataLossError("sealed data failed authentication"),
  };
  for (const absl::Status& in : cases) {
    SCOPED_TRACE(in.ToString());
    grpc::Status out = ToGrpcStatus(WithReason(in, "LEAKY_REASON"), "keys.policy-suite");
    EXPECT_EQ(static_cast<int>(out.error_code()), static_cast<int>(in.code()));
    EXPECT_EQ(out.error_message(), kHiddenMessage);
    EXPECT_EQ(out.error_details().find("LEAKY_REASON"), std::string::npos);
    EXPECT_EQ(out.error_details().find(std::string(in.message())), std::string::npos);
  }
}

TEST(GrpcStatusTest, ReasonTravelsAsErrorInfo) {
  absl::Status in = WithReason(absl::FailedPreconditionError("key k1 is revoked"), "KEY_REVOKED");
  grpc::Status out = ToGrpcStatus(in, "keys.policy-suite");
  EXPECT_EQ(out.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(out.error_message(), "key k1 is revoked");
  ASSERT_FALSE(out.error_details().empty());

  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(out.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_EQ(details.message(), "key k1 is revoked");
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(), kErrorInfoTypeUrl);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "KEY_REVOKED");
  EXPECT_EQ(info.domain(), "keys.policy-suite");
}

TEST(GrpcStatusTest, RetryDelayTravelsAsRetryInfoBesideTheReason) {
  grpc::Status out = WithRetryDelay(
      ToGrpcStatus(WithReason(absl::ResourceExhaustedError("slow down"), "SLOW_DOWN"),
                   "edge.policy-suite"),
      absl::Milliseconds(2500));
  EXPECT_EQ(out.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(out.error_message(), "slow down");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(out.error_details()));
  ASSERT_EQ(details.details_size(), 2);
  google::rpc::RetryInfo info;
  ASSERT_TRUE(details.details(1).UnpackTo(&info));
  EXPECT_EQ(info.retry_delay().seconds(), 2);
  EXPECT_EQ(info.retry_delay().nanos(), 500'000'000);
  EXPECT_EQ(RetryDelayOf(out), absl::Milliseconds(2500));
  EXPECT_EQ(ReasonOf(FromGrpcStatus(out)), "SLOW_DOWN");

  // A status without details gets some; one without RetryInfo has no delay.
  grpc::Status plain(grpc::StatusCode::UNAVAILABLE, "away");
  EXPECT_EQ(RetryDelayOf(plain), std::nullopt);
  EXPECT_EQ(RetryDelayOf(WithRetryDelay(plain, absl::Seconds(3))), absl::Seconds(3));
  EXPECT_EQ(WithRetryDelay(plain, absl::Seconds(3)).error_message(), "away");
}

TEST(GrpcStatusTest, FromGrpcStatusRoundTripsCodeMessageAndReason) {
  absl::Status in = WithReason(absl::NotFoundError("key k9 not found"), "KEY_NOT_FOUND");
  absl::Status back = FromGrpcStatus(ToGrpcStatus(in, "keys.policy-suite"));
  EXPECT_EQ(back.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(back.message(), "key k9 not found");
  EXPECT_EQ(ReasonOf(back), std::optional<std::string>("KEY_NOT_FOUND"));
}

TEST(GrpcStatusTest, FromGrpcStatusWithoutDetails) {
  absl::Status back =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused"));
  EXPECT_EQ(back.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(back.message(), "connection refused");
  EXPECT_EQ(ReasonOf(back), std::nullopt);
}

TEST(GrpcStatusTest, FromGrpcStatusIgnoresGarbageAndForeignDetails) {
  absl::Status garbage = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::ABORTED, "conflict", std::string("\xff\xff\xff", 3)));
  EXPECT_EQ(garbage.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(garbage.message(), "conflict");
  EXPECT_EQ(ReasonOf(garbage), std::nullopt);

  google::rpc::Status details;
  details.set_code(static_cast<int>(grpc::StatusCode::ABORTED));
  auto* any = details.add_details();
  any->set_type_url("type.googleapis.com/google.rpc.RetryInfo");
  any->set_value("whatever");
  absl::Status foreign = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::ABORTED, "conflict", details.SerializeAsString()));
  EXPECT_EQ(foreign.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ReasonOf(foreign), std::nullopt);
}

}  // namespace
}  // namespace policy
