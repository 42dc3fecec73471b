#ifndef POLICY_COMMON_TESTING_TEMP_DIR_H_
#define POLICY_COMMON_TESTING_TEMP_DIR_H_

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "gtest/gtest.h"

namespace policy::testing {

// A fresh directory under the test's temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "policy_test.XXXXXX";
    path_ = mkdtemp(pattern.data()) == nullptr ? "" : pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The path of `name` in the directory.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

  // Writes `content` to `name` atomically (a temporary file renamed over it, as a Kubernetes
  // Secret volume updates its files) and returns its path.
  std::string Write(const std::string& name, const std::string& content) const {
    const std::string path = File(name);
    {
      std::ofstream out(path + ".tmp", std::ios::trunc);
      out << content;
    }
    std::rename((path + ".tmp").c_str(), path.c_str());
    return path;
  }

 private:
  std::string path_;
};

}  // namespace policy::testing

#endif  // POLICY_COMMON_TESTING_TEMP_DIR_H_
