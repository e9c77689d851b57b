// A pool of process-global MEMORY keytab names.
//
// MIT libkrb5 1.20 has no krb5_kt_destroy, and closing a MEMORY keytab keeps it in a
// process-global list for good. Resolving a fresh unique name per check would leak one
// list node per check, so sessions borrow a name from this pool, add one entry, remove
// the entry when done and give the name back. The pool only grows to the peak number of
// sessions using a derived key at the same time.
#pragma once
#include <string>

namespace saslgate {

// Returns a MEMORY keytab name that no other live session uses.
std::string AcquireKeytabName();
// Gives the name back; the caller must have removed its entries.
void ReleaseKeytabName(const std::string& name);

}  // namespace saslgate
