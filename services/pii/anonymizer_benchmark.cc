// The anonymizer alone (no detection) on dense text: 64 KiB of prose with a finding every
// ~100 bytes (e-mails, SSNs, cards, phones, IPs; every value distinct), one request per
// iteration, for each operator; and Restore of an answer full of placeholders. Prints MB/s
// of input; never fails on a figure.
//   build/services/pii/pii_anonymizer_benchmark
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "services/pii/anonymizer.h"

namespace policy::pii {
namespace {

constexpr size_t kTextBytes = 64 << 10;

struct Corpus {
  std::string text;
  std::vector<Finding> findings;
};

const Corpus& DenseCorpus() {
  static const Corpus* const corpus = [] {
    auto* c = new Corpus;
    const std::string filler[] = {
        "Please follow up with the customer about the invoice sent last week; ",
        "the ticket was reopened after the café called back again — see notes, ",
        "and forward the details to the team lead before Friday's review call: ",
    };
    for (int i = 0; c->text.size() < kTextBytes; ++i) {
      c->text += filler[i % 3];
      std::string value;
      std::string type;
      switch (i % 5) {
        case 0:
          value = absl::StrCat("user", i, "@example.com"), type = "EMAIL_ADDRESS";
          break;
        case 1:
          value = absl::StrFormat("%03d-%02d-%04d", 100 + i % 800, 10 + i % 89, 1000 + i),
          type = "US_SSN";
          break;
        case 2:
          value = absl::StrFormat("4111 1111 %04d %04d", i % 10000, (i * 7) % 10000),
          type = "CREDIT_CARD";
          break;
        case 3:
          value = absl::StrFormat("(415) 555-%04d", i % 10000), type = "PHONE_NUMBER";
          break;
        default:
          value = absl::StrFormat("10.%d.%d.%d", i % 256, (i / 256) % 256, i % 200 + 1),
          type = "IP_ADDRESS";
      }
      c->findings.push_back(Finding{.entity_type = type,
                                    .begin = c->text.size(),
                                    .end = c->text.size() + value.size(),
                                    .score = 1,
                                    .recognizer = "benchmark"});
      c->text += value;
      c->text += ". ";
    }
    return c;
  }();
  return *corpus;
}

std::shared_ptr<const PseudonymKey> BenchmarkKey() {
  static const auto key = *PseudonymKey::Derive(std::string(32, 'm'), "proj-benchmark");
  return key;
}

void BM_Anonymize(benchmark::State& state, Operator op) {
  const Corpus& corpus = DenseCorpus();
  AnonymizationPolicy policy;
  policy.default_rule = {.action = Action::kRedact, .op = op};
  for (auto _ : state) {
    RequestContext context(BenchmarkKey());
    absl::StatusOr<AnonymizedText> result =
        Anonymize(corpus.text, corpus.findings, policy, context);
    if (!result.ok()) {
      state.SkipWithError(std::string(result.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(result);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * corpus.text.size()));
  state.counters["findings"] = static_cast<double>(corpus.findings.size());
}
BENCHMARK_CAPTURE(BM_Anonymize, redact, Operator::kRedact);
BENCHMARK_CAPTURE(BM_Anonymize, mask, Operator::kMask);
BENCHMARK_CAPTURE(BM_Anonymize, replace, Operator::kReplaceWithType);
BENCHMARK_CAPTURE(BM_Anonymize, hash, Operator::kKeyedHash);
BENCHMARK_CAPTURE(BM_Anonymize, placeholder, Operator::kPlaceholder);

// The floor of the hash operator: one HMAC-SHA-256 (two SHA-256 compressions) per value.
void BM_Pseudonym(benchmark::State& state) {
  const std::shared_ptr<const PseudonymKey> key = BenchmarkKey();
  std::string out;
  out.reserve(256);
  size_t i = 0;
  const std::string values[] = {"user17@example.com", "123-45-6789", "4111 1111 1111 1111"};
  for (auto _ : state) {
    out.clear();
    key->AppendPseudonym("EMAIL_ADDRESS", values[i++ % 3], out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_Pseudonym);

// A policy as a deployment might set it: placeholders for contact data, masks for numbers,
// IP addresses allowed, one type blocked (absent from the text, so nothing blocks).
void BM_AnonymizeMixedPolicy(benchmark::State& state) {
  const Corpus& corpus = DenseCorpus();
  AnonymizationPolicy policy;
  policy.rules["EMAIL_ADDRESS"] = {.action = Action::kRedact, .op = Operator::kPlaceholder};
  policy.rules["PHONE_NUMBER"] = {.action = Action::kRedact, .op = Operator::kPlaceholder};
  policy.rules["US_SSN"] = {.action = Action::kRedact, .op = Operator::kMask};
  policy.rules["CREDIT_CARD"] = {.action = Action::kRedact, .op = Operator::kMask};
  policy.rules["IP_ADDRESS"] = {.action = Action::kAllow, .op = Operator::kRedact};
  policy.rules["PRIVATE_KEY"] = {.action = Action::kBlock, .op = Operator::kRedact};
  for (auto _ : state) {
    RequestContext context(BenchmarkKey());
    benchmark::DoNotOptimize(Anonymize(corpus.text, corpus.findings, policy, context));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * corpus.text.size()));
}
BENCHMARK(BM_AnonymizeMixedPolicy);

void BM_Restore(benchmark::State& state) {
  const Corpus& corpus = DenseCorpus();
  AnonymizationPolicy policy;
  policy.default_rule = {.action = Action::kRedact, .op = Operator::kPlaceholder};
  RequestContext context;
  const std::string answer = Anonymize(corpus.text, corpus.findings, policy, context)->text;
  for (auto _ : state)
    benchmark::DoNotOptimize(Restore(answer, context.placeholders(), answer.size() * 4));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * answer.size()));
  state.counters["placeholders"] = static_cast<double>(context.placeholders().entries().size());
}
BENCHMARK(BM_Restore);

}  // namespace
}  // namespace policy::pii
