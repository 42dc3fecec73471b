#include "services/authz/invitation.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::authz {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
const absl::Duration kMax = absl::Hours(24 * 30);

Invitation Pending(Role role = Role::kMember, std::vector<std::string> projects = {"p1", "p2"}) {
  return Invitation{"inv-1",
                    "newdev@company.com",
                    role,
                    std::move(projects),
                    kNow,
                    kNow + absl::Hours(24 * 7),
                    InvitationState::kPending,
                    std::nullopt,
                    "",
                    "",
                    ""};
}

TEST(InvitationTest, ValidatesEveryField) {
  EXPECT_TRUE(ValidateInvitation(Pending(), kNow, kMax).ok());
  EXPECT_TRUE(ValidateInvitation(Pending(Role::kAdmin, {}), kNow, kMax).ok());
  auto expect_invalid = [](const Invitation& inv, absl::string_view text) {
    absl::Status s = ValidateInvitation(inv, kNow, kMax);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(s.message(), HasSubstr(text));
  };
  Invitation inv = Pending();
  inv.email = "newdev";
  expect_invalid(inv, "invitation.email");
  expect_invalid(Pending(Role::kAdmin, {"p1"}), "must be empty");
  expect_invalid(Pending(Role::kReader, {}), "is required");
  expect_invalid(Pending(Role::kMember, {"p1", "p1"}), "projects[1] is listed twice");
  expect_invalid(Pending(Role::kMember, {"p 1"}), "projects[0]");
  inv = Pending();
  inv.expires_at = kNow;
  expect_invalid(inv, "not in the future");
  inv.expires_at = kNow + kMax + absl::Seconds(1);
  expect_invalid(inv, "more than");
}

TEST(InvitationTest, AcceptingGrantsTheRoleInEachProjectOnce) {
  Invitation inv = Pending();
  absl::StatusOr<std::vector<RoleGrant>> grants = Accept(inv, kNow + absl::Hours(1));
  ASSERT_TRUE(grants.ok()) << grants.status();
  EXPECT_THAT(*grants,
              ElementsAre(Field(&RoleGrant::project, "p1"), Field(&RoleGrant::project, "p2")));
  EXPECT_EQ(inv.state, InvitationState::kAccepted);
  EXPECT_EQ(Accept(inv, kNow + absl::Hours(2)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Revoke(inv, kNow).status().code(), absl::StatusCode::kFailedPrecondition);

  Invitation admin = Pending(Role::kAdmin, {});
  grants = Accept(admin, kNow);
  ASSERT_TRUE(grants.ok());
  EXPECT_THAT(*grants, ElementsAre(Field(&RoleGrant::role, Role::kAdmin)));
}

TEST(InvitationTest, ExpiryAndRevocation) {
  Invitation inv = Pending();
  EXPECT_EQ(InvitationStateAt(inv, inv.expires_at - absl::Seconds(1)), InvitationState::kPending);
  EXPECT_EQ(InvitationStateAt(inv, inv.expires_at), InvitationState::kExpired);
  absl::Status late = Accept(inv, inv.expires_at).status();
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(late.message(), HasSubstr("expired"));

  Invitation other = Pending();
  EXPECT_EQ(Revoke(other, kNow).value_or(false), true);
  EXPECT_EQ(Revoke(other, kNow).value_or(true), false);  // Revoking twice changes nothing.
  EXPECT_EQ(Accept(other, kNow).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace policy::authz
