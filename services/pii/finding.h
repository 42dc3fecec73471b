#ifndef POLICY_SERVICES_PII_FINDING_H_
#define POLICY_SERVICES_PII_FINDING_H_

#include <cstddef>
#include <string>

// What the detection engine reports and the anonymizer consumes. No proto here: the pii
// domain libraries never see wire types.
namespace policy::pii {

// One piece of personal data or one secret found in a text.
struct Finding {
  // The entity type, named as Microsoft Presidio names it where Presidio has it ("US_SSN",
  // "CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", ...), or the
  // suite's own name for secrets ("OPENAI_API_KEY", "PRIVATE_KEY", ...) and custom types.
  std::string entity_type;
  // Byte offsets into the UTF-8 input: the finding is text.substr(begin, end - begin).
  size_t begin = 0;
  size_t end = 0;
  // Confidence in [0, 1].
  double score = 0;
  // The recognizer that fired, e.g. "credit_card" or a custom recognizer's name.
  std::string recognizer;
};

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_FINDING_H_
