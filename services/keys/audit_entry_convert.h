#ifndef POLICY_SERVICES_KEYS_AUDIT_ENTRY_CONVERT_H_
#define POLICY_SERVICES_KEYS_AUDIT_ENTRY_CONVERT_H_

#include "policy/audit/v1/audit.pb.h"
#include "services/keys/key_events.h"

namespace policy::keys {

// The audit ledger's entry for a key event: key_created, key_rotated, key_revoked or
// key_overlap_ended, in the ledger of the key's project and environment (the organisation's
// for admin keys), the owner as the subject, and a request id derived from the key and the
// event ("keys:<event>:<key id>"), so that the same event appended twice (a retry, or two
// replicas sweeping the same overlap) is recorded once.
audit::v1::AppendRequest AuditEntryOf(const KeyEvent& event);

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_AUDIT_ENTRY_CONVERT_H_
