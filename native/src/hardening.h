// Process hardening done once, when the addon is loaded.
#pragma once

#include <string>

namespace saslgate {

struct CoreDumpState {
  // prctl(PR_GET_DUMPABLE) after the change: 0 means no core dump and no ptrace by the same uid.
  int dumpable = -1;
  // RLIMIT_CORE after the change (soft and hard), -1 if it could not be read.
  long long soft_limit = -1;
  long long hard_limit = -1;
  // Empty, or what failed (errno text): the caller logs it.
  std::string error;
};

// Core dumps off: RLIMIT_CORE 0 (soft and hard) and PR_SET_DUMPABLE 0. A core file or a
// same-uid ptrace/`/proc/PID/mem` read would expose the passwords and keys in flight.
CoreDumpState DisableCoreDumps();

}  // namespace saslgate
