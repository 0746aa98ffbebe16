"""Corral's default seccomp profile: an allow-list, in the spirit of Docker's default.

Anything not listed fails with EPERM. The lists are grouped by what a program needs them for;
what is left out is left out on purpose (see docs/security.md for the row-by-row comparison
with Docker's profile):
- kernel-global state that no namespace isolates: keyrings (`add_key`, `keyctl`,
  `request_key`: a key host root holds is readable otherwise), modules, kexec, swap, the clock,
  reboot, accounting, quotas, the kernel log;
- new namespaces (`unshare`, `setns`, `clone` with namespace flags): a user namespace gives a
  process every capability over a fresh set of namespaces, from which cgroup v1 hierarchies
  can be mounted and the container's own limits raised;
- mounting (`mount`, `umount2`, `pivot_root`, the new mount API) and `open_by_handle_at`
  (reads files outside the container by inode handle: the "shocker" escape);
- kernel attack surface with a long history of exploits: `bpf`, `perf_event_open`,
  `userfaultfd` (stalls the kernel at will, a race-exploit helper), `io_uring_*` (its
  operations run without passing through seccomp, so they would bypass deny rules too);
- `clone3` answers ENOSYS: its flags are in memory seccomp cannot read, and ENOSYS makes libc
  fall back to `clone`, whose flags are checked;
- `personality` only for querying and the legacy 32-bit/uname26 personas, not to switch off
  address randomisation.

Capabilities lift the rules that guard what the capability grants, as in Docker: a
container given CAP_SYS_ADMIN may mount and unshare, CAP_SYS_TIME may set the clock, and so on.
"""
from __future__ import annotations

from agent.security.profile import EPERM, Arg, Profile, Rule

ENOSYS = 38
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACE_FLAGS = 0x7E020000
# personality(): query (0xffffffff), PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26.
PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
AF_VSOCK = 40

FILES = """
read write readv writev pread64 pwrite64 preadv preadv2 pwritev pwritev2 lseek _llseek
open openat openat2 creat close close_range dup dup2 dup3 fcntl fcntl64 flock
fsync fdatasync sync syncfs sync_file_range truncate truncate64 ftruncate ftruncate64 fallocate
fadvise64 fadvise64_64 readahead sendfile sendfile64 copy_file_range splice tee vmsplice cachestat
stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64 fstatfs fstatfs64
access faccessat faccessat2 readlink readlinkat getdents getdents64 getcwd chdir fchdir
mkdir mkdirat rmdir rename renameat renameat2 link linkat symlink symlinkat unlink unlinkat
chmod fchmod fchmodat fchmodat2 chown chown32 fchown fchown32 fchownat lchown lchown32 umask
utime utimes utimensat utimensat_time64 futimesat mknod mknodat
getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat
listxattr llistxattr flistxattr listxattrat removexattr lremovexattr fremovexattr removexattrat
inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark name_to_handle_at
io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
"""
MEMORY = """
brk mmap mmap2 munmap mremap mprotect madvise mincore msync remap_file_pages
mlock mlock2 mlockall munlock munlockall membarrier memfd_create memfd_secret
pkey_alloc pkey_free pkey_mprotect process_mrelease map_shadow_stack mseal
"""
PROCESSES = """
fork vfork execve execveat exit exit_group wait4 waitid waitpid
getpid getppid gettid getpgid getpgrp setpgid getsid setsid
getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32
getresgid getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid setreuid32
setregid setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid
setfsgid32 setgroups setgroups32 capget capset prctl seccomp landlock_create_ruleset
landlock_add_rule landlock_restrict_self set_tid_address set_robust_list get_robust_list rseq
futex futex_time64 futex_waitv futex_wake futex_wait futex_requeue
getpriority setpriority ioprio_get ioprio_set sched_yield sched_getaffinity sched_setaffinity
sched_getattr sched_setattr sched_getparam sched_setparam sched_getscheduler sched_setscheduler
sched_get_priority_max sched_get_priority_min sched_rr_get_interval sched_rr_get_interval_time64
getrlimit setrlimit prlimit64 ugetrlimit getrusage times sysinfo uname getcpu getrandom
pidfd_open pidfd_send_signal kill tkill tgkill rt_sigaction rt_sigprocmask rt_sigpending
rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_sigqueueinfo rt_tgsigqueueinfo
rt_sigreturn sigreturn sigprocmask sigaltstack signalfd signalfd4 restart_syscall pause
"""
# The kernel's own ptrace checks apply (same user, a visible pid: nothing outside the
# container's pid namespace); on kernels before 4.8 ptrace could bypass seccomp.
TRACING = "ptrace process_vm_readv process_vm_writev"
TIME = """
clock_gettime clock_gettime64 clock_getres clock_getres_time64 clock_nanosleep
clock_nanosleep_time64 nanosleep gettimeofday time getitimer setitimer alarm adjtimex
clock_adjtime clock_adjtime64 timer_create timer_delete timer_gettime timer_gettime64
timer_settime timer_settime64 timer_getoverrun timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64
"""
IPC = """
pipe pipe2 eventfd eventfd2 epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait
epoll_pwait2 poll ppoll ppoll_time64 select _newselect pselect6 pselect6_time64 ioctl
msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64 semctl shmget shmat shmdt
shmctl ipc mq_open mq_unlink mq_timedsend mq_timedsend_time64 mq_timedreceive
mq_timedreceive_time64 mq_notify mq_getsetattr
"""
NETWORK = """
socketpair bind connect listen accept accept4 getsockname getpeername getsockopt setsockopt
sendto recvfrom send recv sendmsg recvmsg sendmmsg recvmmsg recvmmsg_time64 shutdown socketcall
"""
X86 = "arch_prctl modify_ldt get_thread_area set_thread_area"

# Capability -> the syscalls it unlocks (what the capability guards in the kernel anyway).
BY_CAPABILITY = {
    "CAP_SYS_ADMIN": """bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
                        mount mount_setattr move_mount open_tree pivot_root perf_event_open quotactl
                        quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare""",
    "CAP_SYS_BOOT": "reboot",
    "CAP_SYS_CHROOT": "chroot",
    "CAP_SYS_MODULE": "init_module finit_module delete_module",
    "CAP_SYS_PACCT": "acct",
    "CAP_SYS_PTRACE": "kcmp pidfd_getfd process_madvise",
    "CAP_SYS_RAWIO": "iopl ioperm",
    "CAP_SYS_TIME": "settimeofday stime clock_settime clock_settime64",
    "CAP_SYS_TTY_CONFIG": "vhangup",
    "CAP_SYS_NICE": "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    "CAP_SYSLOG": "syslog",
    "CAP_BPF": "bpf",
    "CAP_PERFMON": "perf_event_open",
    "CAP_DAC_READ_SEARCH": "open_by_handle_at",
}


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def build() -> Profile:
    rules = [Rule(names=_names(FILES + MEMORY + PROCESSES + TIME + IPC + NETWORK + TRACING), action="allow"),
             Rule(names=_names(X86), action="allow", arches=("amd64", "x86", "x32")),
             Rule(names=("socket",), action="allow", args=(Arg(0, "NE", AF_VSOCK),))]
    rules += [Rule(names=("personality",), action="allow", args=(Arg(0, "EQ", persona),)) for persona in PERSONAS]
    # Threads and processes, but no new namespaces, unless CAP_SYS_ADMIN allows all of clone.
    rules.append(Rule(names=("clone",), action="allow", args=(Arg(0, "MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0),),
                      not_caps=("CAP_SYS_ADMIN",)))
    rules.append(Rule(names=("clone3",), action="errno", errno=ENOSYS, not_caps=("CAP_SYS_ADMIN",)))
    rules += [Rule(names=_names(names), action="allow", caps=(cap,)) for cap, names in BY_CAPABILITY.items()]
    return Profile(name="default", default_action="errno", default_errno=EPERM,
                   architectures=("X86_64", "X86", "X32"), rules=tuple(rules))


# Architectures per machine: the native one and those its kernel also runs (32-bit x86 on
# x86_64), so a 32-bit binary cannot reach syscalls through a door the filter does not watch.
COMPAT_ARCHES = {"x86_64": ("X86_64", "X86", "X32"), "aarch64": ("AARCH64", "ARM")}


def for_machine(machine: str) -> Profile:
    profile = build()
    arches = COMPAT_ARCHES.get(machine)
    if arches is None:
        return Profile(profile.name, profile.default_action, profile.default_errno, ("NATIVE",), profile.rules)
    return Profile(profile.name, profile.default_action, profile.default_errno, arches, profile.rules)
