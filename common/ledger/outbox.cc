#include "common/ledger/outbox.h"

#include "absl/strings/str_cat.h"

namespace policy::ledger {

std::string ErasedNote(absl::string_view last_error, bool actor, bool subject) {
  const absl::string_view what = actor && subject ? "actor and subject"
                                 : actor          ? "actor"
                                                  : "subject";
  return absl::StrCat(last_error, last_error.empty() ? "" : " ", "(", what, " erased)");
}

}  // namespace policy::ledger
