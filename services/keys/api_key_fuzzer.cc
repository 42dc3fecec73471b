// Fuzz target for what untrusted callers hand the keys service: presented secrets (parsing,
// then verification against a small store) and list page tokens.
#include <cstdint>
#include <string>

#include "common/clock/clock.h"
#include "services/keys/api_key.h"
#include "services/keys/keys_test_util.h"

namespace {

policy::FakeClock* FuzzClock() {
  static policy::FakeClock* const kClock = new policy::FakeClock();
  return kClock;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace policy::keys;
  static InMemoryKeys* const world = new InMemoryKeys(FuzzClock(), 4);
  const std::string input(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<ParsedSecret> parsed = ParseSecret(input);
  absl::StatusOr<VerifiedKey> verified = world->verifier.Verify(input);
  // Only a well-formed secret can verify, and only one that was issued.
  if (verified.ok()) {
    bool issued = false;
    for (const std::string& s : world->secrets) issued |= s == input;
    if (!parsed.ok() || !issued) __builtin_trap();
  }
  if (parsed.ok() && parsed->key_id().size() != 21) __builtin_trap();

  ListKeysParams list;
  list.page_token = input;
  absl::StatusOr<KeyListing> listing = world->lifecycle.List(list);
  if (!listing.ok() && listing.status().code() != absl::StatusCode::kInvalidArgument) {
    __builtin_trap();
  }
  return 0;
}
