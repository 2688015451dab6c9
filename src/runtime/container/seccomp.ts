// Seccomp profile for containers: allow by default, refuse what Docker's default profile refuses.
import { existsSync } from 'node:fs';

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: 'SCMP_CMP_MASKED_EQ' | 'SCMP_CMP_EQ' | 'SCMP_CMP_NE';
}

export interface SeccompSyscall {
  names: string[];
  action: 'SCMP_ACT_ERRNO' | 'SCMP_ACT_ALLOW';
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ALLOW';
  architectures: string[];
  syscalls: SeccompSyscall[];
}

const EPERM = 1;
const ENOSYS = 38;

// Syscalls Docker only grants with CAP_SYS_ADMIN & co., or never; our containers hold none of those caps.
const BLOCKED = [
  'acct', 'add_key', 'bpf', 'clock_adjtime', 'clock_settime', 'create_module', 'delete_module',
  'finit_module', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'get_kernel_syms',
  'init_module', 'ioperm', 'iopl', 'kexec_file_load', 'kexec_load', 'keyctl',
  'lookup_dcookie', 'mount', 'mount_setattr', 'move_mount', 'move_pages',
  'name_to_handle_at', 'nfsservctl', 'open_by_handle_at', 'open_tree', 'perf_event_open',
  'pivot_root', 'query_module', 'quotactl', 'quotactl_fd',
  'reboot', 'request_key', 'setns', 'settimeofday', 'stime', 'swapoff', 'swapon',
  'sysfs', '_sysctl', 'umount', 'umount2', 'unshare', 'uselib', 'userfaultfd', 'ustat', 'vm86',
  'vm86old', 'adjtimex',
];

// Namespace flags of clone(2): creating namespaces needs CAP_SYS_ADMIN in Docker's profile.
const CLONE_NS_FLAGS = [
  0x00020000, // CLONE_NEWNS
  0x02000000, // CLONE_NEWCGROUP
  0x04000000, // CLONE_NEWUTS
  0x08000000, // CLONE_NEWIPC
  0x10000000, // CLONE_NEWUSER
  0x20000000, // CLONE_NEWPID
  0x40000000, // CLONE_NEWNET
];

// personality(2) flags that weaken the process (no ASLR, executable data).
const PERSONALITY_FLAGS = [
  0x0040000, // ADDR_NO_RANDOMIZE
  0x0400000, // READ_IMPLIES_EXEC
];

function architectures(): string[] {
  switch (process.arch) {
    case 'x64':
      return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
    case 'arm64':
      return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    default:
      return [];
  }
}

/** The profile, or undefined when the kernel lacks seccomp filter support. */
export function defaultSeccompProfile(actionsAvailPath = '/proc/sys/kernel/seccomp/actions_avail'): SeccompProfile | undefined {
  if (!existsSync(actionsAvailPath)) return undefined;
  const syscalls: SeccompSyscall[] = [{ names: BLOCKED, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM }];
  // clone's flags are argument 0 on x86_64 and arm64 (s390x differs; not supported here).
  for (const flag of CLONE_NS_FLAGS) {
    syscalls.push({
      names: ['clone'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
    });
  }
  // clone3 passes flags in a struct seccomp cannot inspect; ENOSYS makes libc fall back to clone.
  syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  for (const flag of PERSONALITY_FLAGS) {
    syscalls.push({
      names: ['personality'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
    });
  }
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: architectures(), syscalls };
}
