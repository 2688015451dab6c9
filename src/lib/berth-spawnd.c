/*
 * berth-spawnd: starts processes for berth. Forking a large Node.js process costs ~4 ms of CPU
 * (its page tables are copied); forking this small one costs a fraction of that. berth starts it
 * once, sends it one request per command on stdin and reads one answer per command on stdout.
 *
 * Every integer is a little-endian (host order) 32-bit value.
 *
 * Request:  len id flags timeout_ms argc envc stdin_len, then NUL-terminated strings: cwd ("" =
 *           inherit), argc argv strings, envc env strings (envc 0xFFFFFFFF: this process's
 *           environment), then stdin_len bytes for the child's stdin. `len` counts what follows it.
 * Answer:   len id status signal errno pid cpu_us out_len err_len sync_len, then the three outputs.
 *           cpu_us is the CPU time (user + system) the process and the children it waited for used.
 *           status is the exit code (-1 when killed by `signal`, -2 when answered before it
 *           exited: F_SYNC3); errno is set when the command could not be started at all (then
 *           status is -1 and signal 0).
 *
 * flags:    F_SYNC3  fd 3 of the child is a pipe; the answer is sent as soon as a whole line (or
 *                    EOF) arrived on it, whether or not the process has exited (conmon reports the
 *                    container's PID this way and lives on as the container's monitor). Its
 *                    stdout and stderr are /dev/null then.
 *
 * Built-in commands (run in a forked child, so a slow one never stalls the others):
 *   @mount SOURCE TARGET FSTYPE FLAGS DATA   mount(2); FLAGS in decimal
 *   @umount TARGET FLAGS                     umount2(2)
 *   @loop-mount IMAGE TARGET FSTYPE FLAGS DATA
 *                                            attaches IMAGE to a free loop device (autoclear: the
 *                                            device detaches itself once its last user, the mount,
 *                                            is gone) and mounts it; prints the device's path
 *   @netns-add NAME                          a named network namespace at /run/netns/NAME, as
 *                                            `ip netns add` makes it, with its loopback up
 *   @netns-del NAME                          removes it, as `ip netns delete` does
 *   @listening                               the sockets of this network namespace that take new
 *                                            traffic, as `ss -ltun` finds them: TCP listeners and
 *                                            unconnected UDP sockets, a line `tcp|udp ADDRESS PORT`
 *                                            each on stdout
 *
 * Every child gets its own session, default signal dispositions and an empty signal mask. When
 * berth goes away (EOF on stdin) this process exits and leaves running children alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/loop.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define F_SYNC3 1u
#define MAX_REQUEST (64u << 20)
#define MAX_OUTPUT (64u << 20)

extern char **environ;

struct buf {
  char *p;
  size_t len, cap;
};

struct job {
  uint32_t id, flags;
  pid_t pid;
  int out, err, sync, in; /* our ends; -1 once closed */
  struct buf o, e, s;
  char *input;
  size_t input_len, input_off;
  int64_t deadline; /* ms, monotonic; 0 = none */
  int exited, status, sig, answered;
  uint32_t cpu_us;
  struct job *next;
};

static struct job *jobs;
static struct buf inbuf; /* requests not yet whole */
static int in_eof;

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void die(const char *what) {
  fprintf(stderr, "berth-spawnd: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int buf_add(struct buf *b, const char *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) return -1;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pf = {fd, POLLOUT, 0};
        poll(&pf, 1, -1);
        continue;
      }
      exit(0); /* berth is gone */
    }
    p += w;
    n -= (size_t)w;
  }
}

static void answer(struct job *j, int err) {
  uint32_t h[10];
  size_t body = sizeof h - 4 + j->o.len + j->e.len + j->s.len;
  h[0] = (uint32_t)body;
  h[1] = j->id;
  h[2] = (uint32_t)(err ? -1 : j->exited ? (j->sig ? -1 : j->status) : -2);
  h[3] = (uint32_t)(err ? 0 : j->sig);
  h[4] = (uint32_t)err;
  h[5] = (uint32_t)j->pid;
  h[6] = j->cpu_us;
  h[7] = (uint32_t)j->o.len;
  h[8] = (uint32_t)j->e.len;
  h[9] = (uint32_t)j->s.len;
  struct buf a = {0};
  if (buf_add(&a, (char *)h, sizeof h) || buf_add(&a, j->o.p ? j->o.p : "", j->o.len) || buf_add(&a, j->e.p ? j->e.p : "", j->e.len) ||
      buf_add(&a, j->s.p ? j->s.p : "", j->s.len))
    die("out of memory");
  write_all(1, a.p, a.len);
  free(a.p);
  j->answered = 1;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void free_job(struct job *j) {
  close_fd(&j->out);
  close_fd(&j->err);
  close_fd(&j->sync);
  close_fd(&j->in);
  free(j->o.p);
  free(j->e.p);
  free(j->s.p);
  free(j->input);
  free(j);
}

/* The value of PATH in `env` (or this process's). */
static const char *path_of(char **env) {
  for (char **e = env; *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) return *e + 5;
  return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

/* In the child: exec `file` (searched in the PATH of `env` when it has no slash). Returns errno. */
static int exec_in_path(const char *file, char **argv, char **env) {
  if (strchr(file, '/')) {
    execve(file, argv, env);
    return errno;
  }
  const char *path = path_of(env);
  int found = ENOENT;
  char full[4096];
  while (*path) {
    const char *end = strchr(path, ':');
    size_t n = end ? (size_t)(end - path) : strlen(path);
    if (n > 0 && n + 1 + strlen(file) < sizeof full) {
      memcpy(full, path, n);
      full[n] = '/';
      strcpy(full + n + 1, file);
      execve(full, argv, env);
      if (errno != ENOENT && errno != ENOTDIR) found = errno;
    }
    path += n;
    if (*path == ':') path++;
  }
  return found;
}

#define NETNS_RUN_DIR "/run/netns"

static int netns_path(const char *name, char *path, size_t size) {
  if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || (size_t)snprintf(path, size, NETNS_RUN_DIR "/%s", name) >= size) {
    fprintf(stderr, "invalid network namespace name \"%s\"\n", name);
    return -1;
  }
  return 0;
}

/* In a forked child: what `ip netns add NAME` does, then `ip link set lo up` inside it. */
static int netns_add(const char *name) {
  char path[4096];
  if (netns_path(name, path, sizeof path)) return 1;
  if (mkdir(NETNS_RUN_DIR, 0755) && errno != EEXIST) {
    fprintf(stderr, "mkdir " NETNS_RUN_DIR ": %s\n", strerror(errno));
    return 1;
  }
  /* the dir is a shared mount point, so a namespace mounted here shows in every mount namespace */
  if (mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL)) {
    if (errno != EINVAL || mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC, NULL) ||
        mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL)) {
      fprintf(stderr, "making " NETNS_RUN_DIR " a shared mount: %s\n", strerror(errno));
      return 1;
    }
  }
  int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    fprintf(stderr, "creating %s: %s\n", path, strerror(errno));
    return 1;
  }
  close(fd);
  const char *step = "unshare";
  if (unshare(CLONE_NEWNET) == 0) {
    step = "bind mount";
    if (mount("/proc/self/ns/net", path, "none", MS_BIND, NULL) == 0) {
      step = "loopback up";
      struct ifreq ifr;
      memset(&ifr, 0, sizeof ifr);
      strcpy(ifr.ifr_name, "lo");
      int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) == 0) return 0;
      }
      int e = errno;
      umount2(path, MNT_DETACH);
      errno = e;
    }
  }
  fprintf(stderr, "network namespace %s: %s: %s\n", name, step, strerror(errno));
  unlink(path);
  return 1;
}

static int netns_del(const char *name) {
  char path[4096];
  if (netns_path(name, path, sizeof path)) return 1;
  umount2(path, MNT_DETACH);
  if (unlink(path) == 0) return 0;
  fprintf(stderr, "removing %s: %s\n", path, strerror(errno));
  return errno == ENOENT ? 2 : 1;
}

/*
 * In a forked child: what `mount -o loop` does, without mount(8) reading every mount of the host.
 * The device is held only by this process until mount(2) takes it: if the mount fails, or this
 * process dies before it, closing the device detaches it (autoclear), so no loop device leaks.
 */
static int loop_mount(const char *image, const char *target, const char *fstype, unsigned long flags, const char *data) {
  int file = open(image, O_RDWR | O_CLOEXEC);
  if (file < 0) {
    fprintf(stderr, "opening %s: %s\n", image, strerror(errno));
    return errno == ENOENT ? 2 : 1;
  }
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) {
    fprintf(stderr, "opening /dev/loop-control: %s\n", strerror(errno));
    return 1;
  }
  char dev[64];
  int loop = -1;
  /* another process may configure the free device first: then ask for the next free one */
  for (int attempt = 0; attempt < 64 && loop < 0; attempt++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) {
      fprintf(stderr, "finding a free loop device: %s\n", strerror(errno));
      return 1;
    }
    snprintf(dev, sizeof dev, "/dev/loop%d", n);
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue; /* its node is not there yet */
      fprintf(stderr, "opening %s: %s\n", dev, strerror(errno));
      return 1;
    }
    struct loop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fd = (uint32_t)file;
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    strncpy((char *)cfg.info.lo_file_name, image, LO_NAME_SIZE - 1);
    if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
      loop = fd;
      break;
    }
    int e = errno;
    close(fd);
    if (e != EBUSY) {
      fprintf(stderr, "attaching %s to %s: %s\n", image, dev, strerror(e));
      return 1;
    }
  }
  close(ctl);
  close(file);
  if (loop < 0) {
    fprintf(stderr, "attaching %s: every free loop device was taken meanwhile\n", image);
    return 1;
  }
  if (mount(dev, target, fstype, flags, data[0] ? data : NULL) != 0) {
    fprintf(stderr, "mount %s (%s) on %s: %s\n", dev, image, target, strerror(errno));
    return 32;
  }
  printf("%s\n", dev);
  fflush(stdout); /* the caller _exits */
  return 0;
}

/*
 * In a forked child: asks the kernel (sock_diag) for the sockets in the listening states only, so
 * the cost is that of the few listeners, however many connections the host has (/proc/net/tcp
 * makes the kernel walk every established bucket: ~5 ms a file here even on an idle host).
 */
static int listening(void) {
  static const struct { uint8_t family, protocol; uint32_t states; const char *name; } dumps[] = {
    {AF_INET, IPPROTO_TCP, 1u << 10 /* TCP_LISTEN */, "tcp"},
    {AF_INET6, IPPROTO_TCP, 1u << 10, "tcp"},
    /* an unconnected UDP socket is in TCP_CLOSE; a connected one (a client's) in TCP_ESTABLISHED */
    {AF_INET, IPPROTO_UDP, 1u << 7 /* TCP_CLOSE */, "udp"},
    {AF_INET6, IPPROTO_UDP, 1u << 7, "udp"},
  };
  int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (s < 0) {
    fprintf(stderr, "sock_diag: %s\n", strerror(errno));
    return 1;
  }
  static char buf[64 * 1024];
  for (size_t i = 0; i < sizeof dumps / sizeof dumps[0]; i++) {
    struct {
      struct nlmsghdr nlh;
      struct inet_diag_req_v2 req;
    } q;
    memset(&q, 0, sizeof q);
    q.nlh.nlmsg_len = sizeof q;
    q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    q.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    q.req.sdiag_family = dumps[i].family;
    q.req.sdiag_protocol = dumps[i].protocol;
    q.req.idiag_states = dumps[i].states;
    if (send(s, &q, sizeof q, 0) < 0) {
      fprintf(stderr, "sock_diag: %s\n", strerror(errno));
      return 1;
    }
    for (int done = 0; !done;) {
      ssize_t n = recv(s, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fprintf(stderr, "sock_diag: %s\n", n < 0 ? strerror(errno) : "no answer");
        return 1;
      }
      for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_DONE) {
          done = 1;
          break;
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
          const struct nlmsgerr *e = NLMSG_DATA(h);
          /* no IPv6 (or no UDP diag) in this kernel: nothing of that kind listens */
          if (e->error == -ENOENT || e->error == -EAFNOSUPPORT) {
            done = 1;
            break;
          }
          fprintf(stderr, "sock_diag: %s\n", strerror(-e->error));
          return 1;
        }
        const struct inet_diag_msg *m = NLMSG_DATA(h);
        char addr[INET6_ADDRSTRLEN];
        if (!inet_ntop(m->idiag_family, m->id.idiag_src, addr, sizeof addr)) continue;
        printf("%s %s %u\n", dumps[i].name, addr, ntohs(m->id.idiag_sport));
      }
    }
  }
  return fflush(stdout) == 0 ? 0 : 1;
}

static int builtin(char **argv, int argc) {
  if (strcmp(argv[0], "@listening") == 0 && argc == 1) return listening();
  if (strcmp(argv[0], "@netns-add") == 0 && argc == 2) return netns_add(argv[1]);
  if (strcmp(argv[0], "@netns-del") == 0 && argc == 2) return netns_del(argv[1]);
  if (strcmp(argv[0], "@mount") == 0 && argc == 6) {
    if (mount(argv[1], argv[2], argv[3], strtoul(argv[4], NULL, 10), argv[5][0] ? argv[5] : NULL) == 0) return 0;
    fprintf(stderr, "mount %s on %s: %s\n", argv[1], argv[2], strerror(errno));
    return 32;
  }
  if (strcmp(argv[0], "@loop-mount") == 0 && argc == 6) return loop_mount(argv[1], argv[2], argv[3], strtoul(argv[4], NULL, 10), argv[5]);
  if (strcmp(argv[0], "@umount") == 0 && argc == 3) {
    if (umount2(argv[1], (int)strtoul(argv[2], NULL, 10)) == 0) return 0;
    fprintf(stderr, "umount %s: %s\n", argv[1], strerror(errno));
    return errno == EINVAL ? 32 : errno == ENOENT ? 2 : 1;
  }
  fprintf(stderr, "berth-spawnd: unknown built-in %s with %d arguments\n", argv[0], argc - 1);
  return 127;
}

static void start(uint32_t id, uint32_t flags, uint32_t timeout_ms, const char *cwd, char **argv, int argc, char **env, const char *input, uint32_t input_len) {
  struct job *j = calloc(1, sizeof *j);
  if (!j) die("out of memory");
  j->id = id;
  j->flags = flags;
  j->out = j->err = j->sync = j->in = -1;
  int po[2] = {-1, -1}, pe[2] = {-1, -1}, ps[2] = {-1, -1}, pi[2] = {-1, -1}, px[2] = {-1, -1};
  int err = 0;
  /* a F_SYNC3 child outlives its answer (conmon): its output goes nowhere, never into a pipe we close */
  int sync3 = (flags & F_SYNC3) != 0;
  if ((!sync3 && (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))) || pipe2(px, O_CLOEXEC) || (sync3 && pipe2(ps, O_CLOEXEC)) ||
      (input_len > 0 && pipe2(pi, O_CLOEXEC)))
    err = errno;
  pid_t pid = err ? -1 : fork();
  if (pid == 0) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
    setsid();
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (pi[0] >= 0) dup2(pi[0], 0);
    else dup2(nul, 0);
    dup2(po[1] >= 0 ? po[1] : nul, 1);
    dup2(pe[1] >= 0 ? pe[1] : nul, 2);
    if (ps[1] >= 0) dup2(ps[1], 3);
    int e = 0;
    if (cwd[0] && chdir(cwd) != 0) e = errno;
    if (!e && argv[0][0] == '@') {
      close(px[1]);
      _exit(builtin(argv, argc));
    }
    if (!e) e = exec_in_path(argv[0], argv, env);
    (void)!write(px[1], &e, sizeof e);
    _exit(127);
  }
  if (pid < 0 && !err) err = errno;
  close_fd(&po[1]);
  close_fd(&pe[1]);
  close_fd(&ps[1]);
  close_fd(&pi[0]);
  close_fd(&px[1]);
  if (pid > 0) {
    /* the child execs within moments: its error pipe closes (exec worked) or carries errno */
    int e = 0;
    ssize_t r;
    do r = read(px[0], &e, sizeof e);
    while (r < 0 && errno == EINTR);
    if (r == sizeof e) err = e;
  }
  close_fd(&px[0]);
  j->pid = pid > 0 ? pid : 0;
  j->out = po[0];
  j->err = pe[0];
  j->sync = ps[0];
  j->in = pi[1];
  if (err) {
    if (pid > 0) {
      waitpid(pid, NULL, 0);
      j->pid = 0;
    }
    answer(j, err);
    free_job(j);
    return;
  }
  if (j->in >= 0) {
    fcntl(j->in, F_SETFL, O_NONBLOCK);
    j->input = malloc(input_len);
    if (!j->input) die("out of memory");
    memcpy(j->input, input, input_len);
    j->input_len = input_len;
  }
  j->deadline = timeout_ms ? now_ms() + timeout_ms : 0;
  j->next = jobs;
  jobs = j;
}

static uint32_t u32(const char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Parses and starts every whole request in inbuf. */
static void take_requests(void) {
  size_t off = 0;
  while (inbuf.len - off >= 4) {
    uint32_t len = u32(inbuf.p + off);
    if (len > MAX_REQUEST) {
      fprintf(stderr, "berth-spawnd: request of %u bytes refused\n", len);
      exit(1);
    }
    if (inbuf.len - off - 4 < len) break;
    const char *p = inbuf.p + off + 4, *end = p + len;
    if (len < 24) die("short request");
    uint32_t id = u32(p), flags = u32(p + 4), timeout = u32(p + 8), argc = u32(p + 12), envc = u32(p + 16), input_len = u32(p + 20);
    p += 24;
    int inherit = envc == 0xFFFFFFFFu;
    if (inherit) envc = 0;
    if (argc == 0 || argc > (1u << 20) || envc > (1u << 20)) die("bad request");
    char **argv = calloc(argc + 1, sizeof *argv), **env = calloc(envc + 1, sizeof *env);
    if (!argv || !env) die("out of memory");
    const char *cwd = p;
    p += strnlen(p, (size_t)(end - p)) + 1;
    for (uint32_t i = 0; i < argc + envc; i++) {
      if (p >= end) die("truncated request");
      if (i < argc) argv[i] = (char *)p;
      else env[i - argc] = (char *)p;
      p += strnlen(p, (size_t)(end - p)) + 1;
    }
    if (p > end || (size_t)(end - p) != input_len) die("malformed request");
    start(id, flags, timeout, cwd, argv, (int)argc, inherit ? environ : env, p, input_len);
    free(argv);
    free(env);
    off += 4 + len;
  }
  memmove(inbuf.p, inbuf.p + off, inbuf.len - off);
  inbuf.len -= off;
}

/* Reads what is there on *fd into b; closes *fd at EOF. Kills the job's process past MAX_OUTPUT. */
static void drain(struct job *j, int *fd, struct buf *b) {
  char chunk[65536];
  ssize_t r = read(*fd, chunk, sizeof chunk);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r <= 0) {
    close_fd(fd);
    return;
  }
  if (b->len + (size_t)r > MAX_OUTPUT) {
    if (!j->exited && j->pid > 0) kill(j->pid, SIGKILL);
    close_fd(fd);
    return;
  }
  if (buf_add(b, chunk, (size_t)r)) die("out of memory");
}

static void feed(struct job *j) {
  while (j->input_off < j->input_len) {
    ssize_t w = write(j->in, j->input + j->input_off, j->input_len - j->input_off);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      break; /* EPIPE: the child does not read its stdin */
    }
    j->input_off += (size_t)w;
  }
  close_fd(&j->in);
}

static void reap(void) {
  int st;
  pid_t pid;
  struct rusage ru;
  while ((pid = wait4(-1, &st, WNOHANG, &ru)) > 0) {
    for (struct job *j = jobs; j; j = j->next) {
      if (j->pid != pid || j->exited) continue;
      j->exited = 1;
      j->cpu_us = (uint32_t)((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
      if (WIFSIGNALED(st)) j->sig = WTERMSIG(st);
      else j->status = WEXITSTATUS(st);
    }
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, NULL)) die("sigprocmask");
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("signalfd");
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);
  struct pollfd *pfds = NULL;
  struct job **owners = NULL;
  int **fds = NULL;
  size_t cap = 0;
  for (;;) {
    /* jobs that are done: answer and forget */
    for (struct job **pp = &jobs; *pp;) {
      struct job *j = *pp;
      int sync_done = (j->flags & F_SYNC3) && (j->sync < 0 || memchr(j->s.p ? j->s.p : "", '\n', j->s.len));
      if (!j->answered && (sync_done || (j->exited && j->out < 0 && j->err < 0 && j->sync < 0))) {
        answer(j, 0);
        close_fd(&j->sync);
      }
      if (j->answered && (j->exited || j->pid == 0)) {
        *pp = j->next;
        free_job(j);
        continue;
      }
      pp = &j->next;
    }
    /* berth is gone: nobody reads answers any more; the children run on */
    if (in_eof) return 0;
    size_t n = 0, need = 2;
    for (struct job *j = jobs; j; j = j->next) need += 4;
    if (need > cap) {
      cap = need * 2;
      pfds = realloc(pfds, cap * sizeof *pfds);
      owners = realloc(owners, cap * sizeof *owners);
      fds = realloc(fds, cap * sizeof *fds);
      if (!pfds || !owners || !fds) die("out of memory");
    }
    pfds[n++] = (struct pollfd){0, POLLIN, 0};
    pfds[n++] = (struct pollfd){sfd, POLLIN, 0};
    int64_t now = now_ms(), wait = -1;
    for (struct job *j = jobs; j; j = j->next) {
      if (j->answered) continue;
      int *mine[4] = {&j->out, &j->err, &j->sync, &j->in};
      for (int k = 0; k < 4; k++) {
        if (*mine[k] < 0) continue;
        owners[n] = j;
        fds[n] = mine[k];
        pfds[n++] = (struct pollfd){*mine[k], (short)(k == 3 ? POLLOUT : POLLIN), 0};
      }
      if (j->deadline && !j->exited) {
        if (j->deadline <= now) {
          kill(j->pid, SIGKILL);
          j->deadline = 0;
        } else if (wait < 0 || j->deadline - now < wait) wait = j->deadline - now;
      }
    }
    if (poll(pfds, n, (int)wait) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    for (size_t i = 2; i < n; i++) {
      if (!pfds[i].revents) continue;
      struct job *j = owners[i];
      if (fds[i] == &j->in) feed(j);
      else drain(j, fds[i], fds[i] == &j->out ? &j->o : fds[i] == &j->err ? &j->e : &j->s);
    }
    if (pfds[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      reap();
    }
    if (pfds[0].revents) {
      char chunk[65536];
      ssize_t r = read(0, chunk, sizeof chunk);
      if (r < 0 && errno != EINTR && errno != EAGAIN) in_eof = 1;
      else if (r == 0) in_eof = 1;
      else if (r > 0) {
        if (buf_add(&inbuf, chunk, (size_t)r)) die("out of memory");
        take_requests();
      }
    }
  }
}
