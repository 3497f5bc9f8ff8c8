// landlock_defs: the Landlock ABI pieces newer than Debian 12's <linux/landlock.h> (which stops at
// ABI 2). Decision: define the kernel's stable UAPI values here, with our own struct names, instead
// of requiring newer kernel headers; the running kernel's ABI version decides which bits are used.
#pragma once
#include <cstdint>

namespace m1::sandbox::detail::ll {

constexpr uint32_t kCreateRulesetVersion = 1u << 0;
constexpr int kRulePathBeneath = 1;

// Filesystem rights (ABI 1: bits 0..12, ABI 2: REFER, ABI 3: TRUNCATE, ABI 5: IOCTL_DEV).
constexpr uint64_t kExecute = 1ull << 0, kWriteFile = 1ull << 1, kReadFile = 1ull << 2,
                   kReadDir = 1ull << 3, kRemoveDir = 1ull << 4, kRemoveFile = 1ull << 5,
                   kMakeChar = 1ull << 6, kMakeDir = 1ull << 7, kMakeReg = 1ull << 8,
                   kMakeSock = 1ull << 9, kMakeFifo = 1ull << 10, kMakeBlock = 1ull << 11,
                   kMakeSym = 1ull << 12, kRefer = 1ull << 13, kTruncate = 1ull << 14,
                   kIoctlDev = 1ull << 15;
// Network rights (ABI 4).
constexpr uint64_t kNetBindTcp = 1ull << 0, kNetConnectTcp = 1ull << 1;
// Scopes (ABI 6): no connecting to abstract UNIX sockets or signalling processes outside.
constexpr uint64_t kScopeAbstractUnix = 1ull << 0, kScopeSignal = 1ull << 1;

// Rights that may be granted on a regular file (not only on directories).
constexpr uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;

struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
// The size passed to landlock_create_ruleset grows with the ABI.
constexpr unsigned long kRulesetSizeV1 = 8, kRulesetSizeV4 = 16, kRulesetSizeV6 = 24;

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

// All filesystem rights the kernel with this ABI knows about.
inline uint64_t fs_rights_for_abi(int abi) {
  uint64_t r = (1ull << 13) - 1;
  if (abi >= 2) r |= kRefer;
  if (abi >= 3) r |= kTruncate;
  if (abi >= 5) r |= kIoctlDev;
  return r;
}

}  // namespace m1::sandbox::detail::ll
