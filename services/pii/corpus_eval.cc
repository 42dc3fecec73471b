// Precision and recall of the default detector on a labelled corpus, per entity type.
//
//   pii_corpus_eval CORPUS_FILE [--max-examples N]
//
// The corpus (tools/pii_corpus/generate.py writes it) is a sequence of records:
//
//   record <id> <positive|hard_negative>
//   text <N>
//   <exactly N bytes of UTF-8 text>
//   entity <TYPE> <begin> <end>        (zero or more; byte offsets, increasing, disjoint)
//   end
//
// Every record is scanned with a default Detector and default ScanOptions; a finding is a true
// positive when a label has the same type, begin and end. Prints a table per type (labels,
// true and false positives, misses, precision, recall), then each miss and false positive
// (up to --max-examples of each, default 40) and the formats (record ids without their
// number) they come from. Exits 0 when every type of the detector has labels and precision
// and recall of at least 0.99, 1 otherwise, 2 for an unreadable or malformed corpus.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/pii/detector.h"

namespace policy::pii {
namespace {

constexpr double kGoal = 0.99;

struct Label {
  std::string type;
  size_t begin = 0;
  size_t end = 0;
};

struct Record {
  std::string id;
  bool hard_negative = false;
  std::string text;
  std::vector<Label> labels;
};

// Reads records from the corpus bytes; INVALID_ARGUMENT naming the byte offset and record.
class CorpusReader {
 public:
  explicit CorpusReader(absl::string_view data) : data_(data) {}

  absl::StatusOr<std::vector<Record>> ReadAll() {
    std::vector<Record> records;
    while (at_ < data_.size()) {
      absl::StatusOr<Record> record = ReadRecord();
      if (!record.ok()) return record.status();
      records.push_back(std::move(*record));
    }
    return records;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("byte ", at_, current_.empty() ? "" : absl::StrCat(" (record ", current_, ")"),
                     ": ", what));
  }

  // The next line without its '\n'.
  absl::StatusOr<absl::string_view> Line() {
    const size_t newline = data_.find('\n', at_);
    if (newline == absl::string_view::npos) return Error("a line without its newline");
    const absl::string_view line = data_.substr(at_, newline - at_);
    at_ = newline + 1;
    return line;
  }

  absl::StatusOr<Record> ReadRecord() {
    Record record;
    current_.clear();
    absl::StatusOr<absl::string_view> header = Line();
    if (!header.ok()) return header.status();
    const std::vector<absl::string_view> head = absl::StrSplit(*header, ' ');
    if (head.size() != 3 || head[0] != "record" || head[1].empty()) {
      return Error(absl::StrCat("expected 'record <id> <kind>', got '", *header, "'"));
    }
    record.id = std::string(head[1]);
    current_ = record.id;
    if (head[2] != "positive" && head[2] != "hard_negative") {
      return Error(absl::StrCat("unknown kind '", head[2], "'"));
    }
    record.hard_negative = head[2] == "hard_negative";

    absl::StatusOr<absl::string_view> text_line = Line();
    if (!text_line.ok()) return text_line.status();
    size_t size = 0;
    if (!absl::ConsumePrefix(&*text_line, "text ") || !absl::SimpleAtoi(*text_line, &size)) {
      return Error("expected 'text <N>'");
    }
    if (size > data_.size() - at_ || at_ + size >= data_.size() || data_[at_ + size] != '\n') {
      return Error(absl::StrCat("the text of ", size, " bytes is not followed by a newline"));
    }
    record.text = std::string(data_.substr(at_, size));
    at_ += size + 1;

    while (true) {
      absl::StatusOr<absl::string_view> line = Line();
      if (!line.ok()) return line.status();
      if (*line == "end") break;
      const std::vector<absl::string_view> parts = absl::StrSplit(*line, ' ');
      Label label;
      if (parts.size() != 4 || parts[0] != "entity" || parts[1].empty() ||
          !absl::SimpleAtoi(parts[2], &label.begin) || !absl::SimpleAtoi(parts[3], &label.end)) {
        return Error(
            absl::StrCat("expected 'entity <TYPE> <begin> <end>' or 'end', got '", *line, "'"));
      }
      label.type = std::string(parts[1]);
      if (label.begin >= label.end || label.end > record.text.size()) {
        return Error(absl::StrCat("entity [", label.begin, ", ", label.end,
                                  ") is empty or outside the text"));
      }
      if (!record.labels.empty() && label.begin < record.labels.back().end) {
        return Error("entities overlap or are out of order");
      }
      record.labels.push_back(std::move(label));
    }
    if (record.hard_negative && !record.labels.empty()) {
      return Error("a hard_negative record has entities");
    }
    return record;
  }

  absl::string_view data_;
  size_t at_ = 0;
  std::string current_;
};

// The text of [begin, end) on one line, shortened in the middle when long.
std::string Excerpt(absl::string_view text, size_t begin, size_t end) {
  std::string out;
  absl::string_view slice = text.substr(begin, end - begin);
  constexpr size_t kLongest = 120;
  std::string shown = slice.size() <= kLongest
                          ? std::string(slice)
                          : absl::StrCat(slice.substr(0, kLongest / 2), " ... ",
                                         slice.substr(slice.size() - kLongest / 2));
  for (char c : shown) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += c;
    }
  }
  return out;
}

// The record id without a trailing "-<number>": the format it exercises.
std::string FormatOf(absl::string_view id) {
  const size_t dash = id.rfind('-');
  if (dash == absl::string_view::npos) return std::string(id);
  for (char c : id.substr(dash + 1)) {
    if (c < '0' || c > '9') return std::string(id);
  }
  return std::string(id.substr(0, dash));
}

struct TypeCounts {
  size_t labels = 0;
  size_t true_positives = 0;
  size_t false_positives = 0;
  size_t misses = 0;
};

double Ratio(size_t part, size_t whole) {
  return whole == 0 ? 1.0 : static_cast<double>(part) / static_cast<double>(whole);
}

int Evaluate(const std::vector<Record>& records, const Detector& detector, size_t max_examples) {
  std::map<std::string, TypeCounts> counts;
  for (const std::string& type : detector.EntityTypes()) counts[type];
  std::vector<std::string> misses;
  std::vector<std::string> false_positives;
  std::map<std::string, size_t> misses_by_format;
  std::map<std::string, size_t> false_positives_by_format;
  size_t bytes = 0;
  size_t hard_negatives = 0;
  std::chrono::duration<double> scanning{0};

  for (const Record& record : records) {
    bytes += record.text.size();
    hard_negatives += record.hard_negative ? 1 : 0;
    const auto start = std::chrono::steady_clock::now();
    const std::vector<Finding> findings = detector.Scan(record.text);
    scanning += std::chrono::steady_clock::now() - start;

    std::map<std::tuple<std::string, size_t, size_t>, bool> labelled;  // -> found.
    for (const Label& label : record.labels) {
      labelled[{label.type, label.begin, label.end}] = false;
      ++counts[label.type].labels;
    }
    for (const Finding& f : findings) {
      auto it = labelled.find({f.entity_type, f.begin, f.end});
      if (it != labelled.end()) {
        it->second = true;
        ++counts[f.entity_type].true_positives;
        continue;
      }
      ++counts[f.entity_type].false_positives;
      ++false_positives_by_format[FormatOf(record.id)];
      if (false_positives.size() < max_examples) {
        false_positives.push_back(absl::StrCat(record.id, " ", f.entity_type, " [", f.begin, ",",
                                               f.end, ") '", Excerpt(record.text, f.begin, f.end),
                                               "' by ", f.recognizer, " (", f.score, ")"));
      }
    }
    for (const Label& label : record.labels) {
      if (labelled[{label.type, label.begin, label.end}]) continue;
      ++counts[label.type].misses;
      ++misses_by_format[FormatOf(record.id)];
      if (misses.size() >= max_examples) continue;
      std::string found_instead;
      for (const Finding& f : findings) {
        if (f.begin < label.end && label.begin < f.end) {
          absl::StrAppend(&found_instead, found_instead.empty() ? "; found " : ", ", f.entity_type,
                          " [", f.begin, ",", f.end, ") '", Excerpt(record.text, f.begin, f.end),
                          "'");
        }
      }
      const size_t context_begin = label.begin > 40 ? label.begin - 40 : 0;
      misses.push_back(absl::StrCat(record.id, " ", label.type, " [", label.begin, ",", label.end,
                                    ") '", Excerpt(record.text, label.begin, label.end),
                                    "' after '", Excerpt(record.text, context_begin, label.begin),
                                    "'", found_instead));
    }
  }

  std::printf("%zu records (%zu hard negatives), %zu bytes, scanned at %.1f MB/s\n\n",
              records.size(), hard_negatives, bytes,
              scanning.count() > 0 ? static_cast<double>(bytes) / scanning.count() / 1e6 : 0.0);
  std::printf("%-26s %7s %7s %7s %7s %9s %9s\n", "type", "labels", "tp", "fp", "fn", "precision",
              "recall");
  std::vector<std::string> failures;
  for (const auto& [type, c] : counts) {
    const double precision = Ratio(c.true_positives, c.true_positives + c.false_positives);
    const double recall = Ratio(c.true_positives, c.labels);
    std::printf("%-26s %7zu %7zu %7zu %7zu %9.4f %9.4f\n", type.c_str(), c.labels, c.true_positives,
                c.false_positives, c.misses, precision, recall);
    if (c.labels == 0 && detector.KnowsEntityType(type)) {
      failures.push_back(absl::StrCat(type, ": no labels in the corpus"));
    }
    if (precision < kGoal) failures.push_back(absl::StrCat(type, ": precision below ", kGoal));
    if (recall < kGoal) failures.push_back(absl::StrCat(type, ": recall below ", kGoal));
  }
  const bool pass = failures.empty();

  auto print_list = [](const char* title, const std::vector<std::string>& lines, size_t total) {
    if (total == 0) return;
    std::printf("\n%s (%zu%s):\n", title, total, lines.size() < total ? ", first shown" : "");
    for (const std::string& line : lines) std::printf("  %s\n", line.c_str());
  };
  size_t total_misses = 0;
  size_t total_false_positives = 0;
  for (const auto& [type, c] : counts) {
    total_misses += c.misses;
    total_false_positives += c.false_positives;
  }
  print_list("misses", misses, total_misses);
  print_list("false positives", false_positives, total_false_positives);
  auto print_formats = [](const char* title, const std::map<std::string, size_t>& by_format) {
    if (by_format.empty()) return;
    std::printf("\n%s by format:\n", title);
    for (const auto& [format, n] : by_format) std::printf("  %-40s %zu\n", format.c_str(), n);
  };
  print_formats("misses", misses_by_format);
  print_formats("false positives", false_positives_by_format);

  std::printf("\n%s\n", pass ? "PASS: every type at or above the goal"
                             : "FAIL: some types are below the goal");
  for (const std::string& failure : failures) std::printf("  %s\n", failure.c_str());
  return pass ? 0 : 1;
}

int Main(int argc, char** argv) {
  std::string path;
  size_t max_examples = 40;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--max-examples" && i + 1 < argc) {
      if (!absl::SimpleAtoi(argv[++i], &max_examples)) {
        std::fprintf(stderr, "--max-examples needs a number\n");
        return 2;
      }
    } else if (path.empty() && !arg.empty() && arg[0] != '-') {
      path = std::string(arg);
    } else {
      std::fprintf(stderr, "usage: %s CORPUS_FILE [--max-examples N]\n", argv[0]);
      return 2;
    }
  }
  if (path.empty()) {
    std::fprintf(stderr, "usage: %s CORPUS_FILE [--max-examples N]\n", argv[0]);
    return 2;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return 2;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string data = buffer.str();
  absl::StatusOr<std::vector<Record>> records = CorpusReader(data).ReadAll();
  if (!records.ok()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), std::string(records.status().message()).c_str());
    return 2;
  }
  if (records->empty()) {
    std::fprintf(stderr, "%s: no records\n", path.c_str());
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Detector>> detector = Detector::Create({});
  if (!detector.ok()) {
    std::fprintf(stderr, "%s\n", std::string(detector.status().message()).c_str());
    return 2;
  }
  return Evaluate(*records, **detector, max_examples);
}

}  // namespace
}  // namespace policy::pii

int main(int argc, char** argv) { return policy::pii::Main(argc, argv); }
