// Fuzz target for what untrusted callers hand the keys service: presented secrets (parsing,
// then verification against a small store) and list page tokens.
#include <cstdint>
#include <string>

#include "common/clock/clock.h"
#include "services/keys/api_key.h"
#include "services/keys/key_lifecycle.h"
#include "services/keys/key_verifier.h"
#include "services/keys/memory_key_store.h"

namespace policy::keys {
namespace {

class NullSink : public KeyEventSink {
 public:
  void Publish(const KeyEvent&) override {}
};

struct World {
  World()
      : pepper(*Pepper::Create("fuzz-pepper-0123456789abcdef0123456789abcdef")),
        lifecycle(&store, pepper.get(), &sink, &clock, KeyPolicy{}),
        verifier(pepper.get(), &clock, absl::InfiniteDuration()) {
    store.Watch(&verifier);
    CreateKeyParams params;
    params.owner = {PrincipalType::kMember, "fuzz"};
    params.project = "fuzz";
    for (int i = 0; i < 4; ++i) secrets.push_back(lifecycle.Create(params)->secret);
  }
  FakeClock clock;
  MemoryKeyStore store;
  NullSink sink;
  std::unique_ptr<Pepper> pepper;
  KeyLifecycle lifecycle;
  KeyVerifier verifier;
  std::vector<std::string> secrets;
};

}  // namespace
}  // namespace policy::keys

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace policy::keys;
  static World* const world = new World();
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
