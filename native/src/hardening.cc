#include "hardening.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

namespace saslgate {

CoreDumpState DisableCoreDumps() {
  CoreDumpState s;
  struct rlimit zero = {0, 0};
  if (setrlimit(RLIMIT_CORE, &zero) != 0)
    s.error = std::string("setrlimit(RLIMIT_CORE): ") + std::strerror(errno);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    if (!s.error.empty()) s.error += "; ";
    s.error += std::string("prctl(PR_SET_DUMPABLE): ") + std::strerror(errno);
  }
  // Read both back: what is reported is what holds, not what was asked for.
  s.dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  struct rlimit now {};
  if (getrlimit(RLIMIT_CORE, &now) == 0) {
    s.soft_limit = now.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long long>(now.rlim_cur);
    s.hard_limit = now.rlim_max == RLIM_INFINITY ? -1 : static_cast<long long>(now.rlim_max);
  }
  return s;
}

}  // namespace saslgate
