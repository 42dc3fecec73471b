#ifndef POLICY_COMMON_PROTO_WELL_KNOWN_H_
#define POLICY_COMMON_PROTO_WELL_KNOWN_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

// google.protobuf.Timestamp and Duration to and from absl, at microsecond precision, the same
// way in every service. Translation layer only: for the services' proto_convert files, never
// for domain code. Conversions from the wire check the ranges the types allow and return
// INVALID_ARGUMENT naming `field`.
namespace policy::proto {

void SetTime(absl::Time t, google::protobuf::Timestamp* out);
void SetDuration(absl::Duration d, google::protobuf::Duration* out);
absl::StatusOr<absl::Time> TimeFromProto(const google::protobuf::Timestamp& t,
                                         absl::string_view field);
absl::StatusOr<absl::Duration> DurationFromProto(const google::protobuf::Duration& d,
                                                 absl::string_view field);

}  // namespace policy::proto

#endif  // POLICY_COMMON_PROTO_WELL_KNOWN_H_
