#include "services/audit/proto_convert.h"

#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/paging/page_token.h"
#include "common/proto/well_known.h"
#include "common/status/status.h"
#include "google/protobuf/util/json_util.h"

namespace policy::audit {
namespace {

using proto::DurationFromProto;
using proto::SetDuration;
using proto::SetTime;
using proto::TimeFromProto;

// Proto enum values follow the domain's order, shifted by one for UNSPECIFIED.
absl::StatusOr<Action> ActionFromProto(v1::Action action, absl::string_view field) {
  const int value = static_cast<int>(action);
  if (value < 1 || value > kActionCount) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": an action is required (", value, " is not one)"));
  }
  return static_cast<Action>(value - 1);
}

v1::Action ActionToProto(Action action) {
  return static_cast<v1::Action>(static_cast<int>(action) + 1);
}

absl::StatusOr<Outcome> OutcomeFromProto(v1::Outcome outcome, absl::string_view field) {
  switch (outcome) {
    case v1::OUTCOME_UNSPECIFIED:
    case v1::OUTCOME_SUCCESS:
      return Outcome::kSuccess;
    case v1::OUTCOME_ERROR:
      return Outcome::kError;
    case v1::OUTCOME_BLOCKED:
      return Outcome::kBlocked;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": unknown outcome ", static_cast<int>(outcome)));
  }
}

v1::Outcome OutcomeToProto(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return v1::OUTCOME_SUCCESS;
    case Outcome::kError:
      return v1::OUTCOME_ERROR;
    case Outcome::kBlocked:
      return v1::OUTCOME_BLOCKED;
  }
  return v1::OUTCOME_SUCCESS;
}

absl::StatusOr<Hash> HashField(const std::string& bytes, absl::string_view field) {
  absl::StatusOr<Hash> h = HashFromBytes(bytes);
  if (!h.ok()) return absl::DataLossError(absl::StrCat(field, ": not a 32-byte hash"));
  return h;
}

}  // namespace

absl::StatusOr<EntryInput> FromProto(const v1::EntryInput& in) {
  EntryInput out;
  ASSIGN_OR_RETURN(out.action, ActionFromProto(in.action(), "entry.action"));
  out.actor = in.actor();
  out.ledger = LedgerRef{in.project(), in.environment()};
  out.model = in.model();
  out.tokens = in.tokens();
  if (in.has_latency()) {
    ASSIGN_OR_RETURN(out.latency, DurationFromProto(in.latency(), "entry.latency"));
  }
  ASSIGN_OR_RETURN(out.outcome, OutcomeFromProto(in.outcome(), "entry.outcome"));
  out.metadata = Metadata(in.metadata().begin(), in.metadata().end());
  out.content_hash = in.content_hash();
  out.request_id = in.request_id();
  out.subject = in.subject();
  if (in.has_occurred_at()) {
    ASSIGN_OR_RETURN(out.occurred_at, TimeFromProto(in.occurred_at(), "entry.occurred_at"));
  }
  return out;
}

LedgerRef FromProto(const v1::LedgerRef& in) { return LedgerRef{in.project(), in.environment()}; }

void ToProto(const LedgerRef& ledger, v1::LedgerRef* out) {
  out->set_project(ledger.project);
  out->set_environment(ledger.environment);
}

void ToProto(const RevealedEntry& r, v1::Entry* out) {
  const Entry& e = r.entry;
  ToProto(e.ledger, out->mutable_ledger());
  out->set_index(e.index);
  SetTime(e.time, out->mutable_time());
  out->set_action(ActionToProto(e.action));
  out->set_actor_ref(e.actor.ref);
  out->set_actor_sealed(e.actor.sealed);
  out->set_actor(r.actor);
  out->set_model(e.model);
  out->set_tokens(e.tokens);
  SetDuration(e.latency, out->mutable_latency());
  out->set_outcome(OutcomeToProto(e.outcome));
  for (const auto& [k, v] : e.metadata) (*out->mutable_metadata())[k] = v;
  out->set_content_hash(e.content_hash);
  out->set_request_id(e.request_id);
  out->set_subject_ref(e.subject.ref);
  out->set_subject_sealed(e.subject.sealed);
  out->set_subject(r.subject);
  out->set_leaf_hash(std::string(AsBytes(e.leaf_hash)));
  out->set_subtree_hashes(EncodeHashes(e.completed));
}

void ToProto(const Checkpoint& c, v1::Checkpoint* out) {
  ToProto(c.ledger, out->mutable_ledger());
  out->set_tree_size(c.tree_size);
  out->set_root_hash(std::string(AsBytes(c.root)));
  SetTime(c.time, out->mutable_time());
  out->set_note(CheckpointNote(c));
  out->set_signature(c.signature);
  out->set_key_id(c.key_id);
}

void ToProto(const IntegrityReport& r, v1::IntegrityReport* out) {
  out->set_valid(r.valid);
  out->set_entries_checked(r.entries_checked);
  out->set_checkpoints_checked(r.checkpoints_checked);
  out->set_first_bad_index(r.first_bad_index);
  out->set_problem(r.problem);
  for (const auto& [key_id, count] : r.checkpoints_by_key) {
    (*out->mutable_checkpoints_by_key())[key_id] = count;
  }
}

absl::StatusOr<Entry> EntryFromProto(const v1::Entry& in) {
  Entry e;
  e.ledger = FromProto(in.ledger());
  e.index = in.index();
  absl::StatusOr<absl::Time> time = TimeFromProto(in.time(), "time");
  if (!time.ok()) return absl::DataLossError(time.status().message());
  e.time = *time;
  absl::StatusOr<Action> action = ActionFromProto(in.action(), "action");
  if (!action.ok()) return absl::DataLossError(action.status().message());
  e.action = *action;
  e.actor = SealedSubject{in.actor_ref(), in.actor_sealed()};
  e.model = in.model();
  e.tokens = in.tokens();
  absl::StatusOr<absl::Duration> latency = DurationFromProto(in.latency(), "latency");
  if (!latency.ok()) return absl::DataLossError(latency.status().message());
  e.latency = *latency;
  absl::StatusOr<Outcome> outcome = OutcomeFromProto(in.outcome(), "outcome");
  if (!outcome.ok()) return absl::DataLossError(outcome.status().message());
  e.outcome = *outcome;
  e.metadata = Metadata(in.metadata().begin(), in.metadata().end());
  e.content_hash = in.content_hash();
  e.request_id = in.request_id();
  e.subject = SealedSubject{in.subject_ref(), in.subject_sealed()};
  ASSIGN_OR_RETURN(e.leaf_hash, HashField(in.leaf_hash(), "leaf_hash"));
  ASSIGN_OR_RETURN(e.completed, DecodeHashes(in.subtree_hashes()));
  return e;
}

absl::StatusOr<Checkpoint> CheckpointFromProto(const v1::Checkpoint& in) {
  Checkpoint c;
  c.ledger = FromProto(in.ledger());
  c.tree_size = in.tree_size();
  ASSIGN_OR_RETURN(c.root, HashField(in.root_hash(), "root_hash"));
  absl::StatusOr<absl::Time> time = TimeFromProto(in.time(), "time");
  if (!time.ok()) return absl::DataLossError(time.status().message());
  c.time = *time;
  c.signature = in.signature();
  c.key_id = in.key_id();
  return c;
}

std::string SubjectResumeToken(absl::string_view subject, const SubjectResume& resume) {
  // Projects and environments hold no '/' (ValidateLedger).
  const SubjectCursor& cursor = resume.after;
  std::string text = absl::StrCat(absl::ToUnixMicros(cursor.time), "/", cursor.ledger.project, "/",
                                  cursor.ledger.environment, "/", cursor.index);
  if (resume.org_end.has_value()) absl::StrAppend(&text, "/", *resume.org_end);
  return paging::EncodePageToken(text, {subject});
}

absl::StatusOr<SubjectResume> SubjectResumeFromToken(absl::string_view token,
                                                     absl::string_view subject) {
  ASSIGN_OR_RETURN(std::string text, paging::DecodePageToken(token, {subject}));
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  int64_t micros = 0;
  SubjectResume resume;
  SubjectCursor& cursor = resume.after;
  // An entry's time lies within google.protobuf.Timestamp's range (0001 to 9999), its index
  // within a bigint's: a cursor outside them was not an entry's.
  constexpr int64_t kFirstMicros = -62'135'596'800'000'000;
  constexpr int64_t kLastMicros = 253'402'300'799'999'999;
  if ((parts.size() != 4 && parts.size() != 5) || !absl::SimpleAtoi(parts[0], &micros) ||
      !absl::SimpleAtoi(parts[3], &cursor.index) || micros < kFirstMicros || micros > kLastMicros ||
      cursor.index > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return paging::InvalidPageToken();
  }
  if (parts.size() == 5) {
    uint64_t org_end = 0;
    if (!absl::SimpleAtoi(parts[4], &org_end)) return paging::InvalidPageToken();
    resume.org_end = org_end;
  }
  cursor.time = absl::FromUnixMicros(micros);
  cursor.ledger = LedgerRef{std::move(parts[1]), std::move(parts[2])};
  if (!cursor.ledger.project.empty() && !ValidateLedger(cursor.ledger, "page_token").ok()) {
    return paging::InvalidPageToken();
  }
  return resume;
}

namespace {

// The filters a query's page token is bound to, as one value: the actor (any bytes) last, after
// fields that cannot hold the separator.
std::string QueryFilters(const QuerySpec& spec) {
  auto time = [](const std::optional<absl::Time>& t) {
    return t.has_value() ? absl::StrCat(absl::ToUnixMicros(*t)) : "";
  };
  return absl::StrCat(spec.ledger.project, "\x1f", spec.ledger.environment, "\x1f",
                      spec.action.has_value() ? ActionName(*spec.action) : "", "\x1f",
                      time(spec.start), "\x1f", time(spec.end), "\x1f", spec.actor);
}

}  // namespace

std::string QueryPageToken(const QuerySpec& spec, uint64_t next_index, uint64_t end_index) {
  return paging::EncodePageToken(absl::StrCat(next_index, ".", end_index), {QueryFilters(spec)});
}

absl::Status ResumeQueryFromToken(absl::string_view token, QuerySpec* spec) {
  ASSIGN_OR_RETURN(std::string position, paging::DecodePageToken(token, {QueryFilters(*spec)}));
  std::vector<absl::string_view> parts = absl::StrSplit(position, '.');
  uint64_t next = 0;
  uint64_t end = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &next) ||
      !absl::SimpleAtoi(parts[1], &end)) {
    return paging::InvalidPageToken();
  }
  spec->after_index = next;
  spec->end_index = end;
  return absl::OkStatus();
}

std::string ToJsonLine(const v1::Entry& entry) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(entry, &out, options);
  return out;
}

absl::StatusOr<v1::Entry> EntryFromJsonLine(absl::string_view line) {
  v1::Entry entry;
  google::protobuf::util::JsonParseOptions options;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), &entry, options);
  if (!status.ok()) {
    return absl::DataLossError(absl::StrCat("not an entry: ", status.message().as_string()));
  }
  return entry;
}

}  // namespace policy::audit
