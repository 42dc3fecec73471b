#ifndef POLICY_COMMON_TESTING_SUPPORT_TICKET_H_
#define POLICY_COMMON_TESTING_SUPPORT_TICKET_H_

#include <string>

namespace policy::testing {

// The prompt the load generator sends to pii (4 KiB) and, its first KiB, to the edge: a
// support ticket pasted into a chat, with an e-mail address, a phone number, a card and an
// IBAN, then prose with versions, times and amounts (~50 places where a value could start).
// The in-process scan benchmark measures the same text, so that the two figures compare.
inline std::string SupportTicket4k() {
  const std::string pii =
      "The customer (jane.doe@example.com, +1 212-555-0123) says card 4111 1111 1111 1111 "
      "was charged twice; refund to DE89 3704 0044 0532 0130 00. ";
  const std::string prose =
      "Please summarise the ticket below for the support lead, keep it short and polite, and "
      "list the next steps with owners and dates. The release notes for version 2.14.0 "
      "mention a fix for the cache; latency went from 120 ms to 45 ms after the change. ";
  std::string text = pii;
  while (text.size() < 4096) text += prose;
  text.resize(4096);
  return text;
}

}  // namespace policy::testing

#endif  // POLICY_COMMON_TESTING_SUPPORT_TICKET_H_
