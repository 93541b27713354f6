#pragma once

namespace natkeeper {

// sysexits(3) values, so scripts can tell the failure classes apart.
enum ExitCode : int {
  kExitOk = 0,             // every mapping active (and verified unless verification is off)
  kExitSomeFailed = 1,     // at least one mapping failed or failed verification
  kExitUsage = 64,         // EX_USAGE: bad flag or --map spec
  kExitUnavailable = 69,   // EX_UNAVAILABLE: no gateway / no supported protocol; --status: no service
  kExitSoftware = 70,      // EX_SOFTWARE: an internal error stopped the service
  kExitConfig = 78,        // EX_CONFIG: bad configuration file
};

}  // namespace natkeeper
