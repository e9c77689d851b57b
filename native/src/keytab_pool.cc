#include "keytab_pool.h"

#include <mutex>
#include <vector>

namespace saslgate {

namespace {
std::mutex g_mutex;
std::vector<std::string> g_free;
unsigned long g_created = 0;
}  // namespace

std::string AcquireKeytabName() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_free.empty()) {
    std::string name = std::move(g_free.back());
    g_free.pop_back();
    return name;
  }
  return "MEMORY:saslgate-derived-" + std::to_string(++g_created);
}

void ReleaseKeytabName(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_free.push_back(name);
}

}  // namespace saslgate
