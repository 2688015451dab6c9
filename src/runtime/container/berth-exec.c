// berth-exec: owns one `runc exec --detach` process for berth, with or without a pseudo-terminal.
//
// Node cannot receive a file descriptor over a unix socket, and runc hands the pty master of
// `exec --tty` to its caller only that way (--console-socket, SCM_RIGHTS). This helper receives it,
// relays bytes between berth's pipes and the process, applies resizes, reaps the process as a
// child subreaper (so the exit code is exact) and, when berth lets go, kills what it started.
//
// Usage: berth-exec [--console-socket PATH] --pid-file PATH [--cleanup PATH]... -- RUNTIME [ARG...]
//   RUNTIME ARG... must be an `exec --detach --pid-file PATH` of the OCI runtime; with
//   --console-socket also `--console-socket PATH` (and terminal and size in the process spec).
//   Once the runtime has exited, the pid file and each --cleanup file (the process spec, which may
//   hold secrets) are removed, and at the end their directory if it is empty: also when berth died.
// File descriptors:
//   0  input for the process (EOF: closes its stdin; with a tty: types the EOF character once)
//   1  output of the process (with a tty: everything the terminal shows)
//   2  its stderr without a tty, and the runtime's own messages
//   3  control, a socket in both directions. In: "resize ROWS COLS\n"; "kill\n" or EOF ends the
//      session: the process and every process of its session are killed (SIGKILL). (runc makes
//      the process a session leader; crun without a terminal puts it in the session of one of its
//      own processes; a runtime that makes none leaves it in ours, which the helper makes anew.)
//      Out: "pid N\n" once the process runs; at the end "exit CODE\n" (128+signal when killed
//      by one) or "error MESSAGE\n" when the runtime could not start it.
#define _GNU_SOURCE
#include <dirent.h>
#include <libgen.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define CTL_FD 3
#define BUFSZ 32768

struct flow {
  int src, dst;
  char buf[BUFSZ];
  size_t len, off;
  int src_eof; /* nothing more will be read from src */
  int dst_bad; /* dst refused data: discard from now on */
};

static int master_fd = -1;       /* pty master, once runc has sent it */
static int tty_mode;
static pid_t runc_pid = -1, proc_pid = -1;
static long proc_sid = -1;       /* the process's session, read when it is known */
static int runc_done, runc_status, proc_done, proc_status;
static int kill_requested;
static char err_tail[512];       /* the last bytes of stderr before the process ran: runc's reason */
static size_t err_tail_len;
static struct { pid_t pid; int status; } early[16]; /* reaped before we knew which pid was ours */
static int n_early;
static struct flow fin, fout, ferr; /* berth -> process, process -> berth (stdout, stderr) */

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("berth-exec: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("\n", stderr);
  va_end(ap);
  exit(125);
}

static void set_nonblock(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

static void ctl_write(const char *fmt, ...) {
  char line[700];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  /* berth may be gone: a failed write is not an error here */
  for (int off = 0; off < n;) {
    ssize_t w = write(CTL_FD, line + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += w;
  }
}

/* The session of a live process, or -1. */
static long session_of(pid_t pid) {
  char path[64], stat[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return -1;
  stat[n] = 0;
  char *p = strrchr(stat, ')'); /* the command name may hold spaces and parentheses */
  char state;
  long ppid, pgrp, session;
  if (!p || sscanf(p + 1, " %c %ld %ld %ld", &state, &ppid, &pgrp, &session) != 4 || state == 'Z' || state == 'X') return -1;
  return session;
}

/* SIGKILLs the process and every other live process of its session or of ours, until a pass finds
 * none: a process that forks while we scan is caught by the next pass. The process is our child,
 * not yet reaped, so neither its PID nor its session's ID can have been reused; our own session
 * holds only what we started. */
static void kill_session(pid_t proc, long sid) {
  pid_t self = getpid();
  long own = getsid(0);
  kill(proc, SIGKILL);
  for (int pass = 0; pass < 20; pass++) {
    int found = 0;
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
      char *end;
      long pid = strtol(e->d_name, &end, 10);
      if (*end || pid <= 0 || pid == self) continue;
      long session = session_of((pid_t)pid);
      if (session < 0 || (session != sid && session != own)) continue;
      if (kill((pid_t)pid, SIGKILL) == 0) found++;
    }
    closedir(d);
    if (!found) return;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

static void set_winsize(int rows, int cols) {
  if (master_fd < 0 || rows <= 0 || cols <= 0 || rows > 65535 || cols > 65535) return;
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  ioctl(master_fd, TIOCSWINSZ, &ws);
}

static char ctl_buf[256];
static size_t ctl_len;

static void handle_ctl(void) {
  ssize_t n = read(CTL_FD, ctl_buf + ctl_len, sizeof ctl_buf - 1 - ctl_len);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    kill_requested = 1;
    return;
  }
  ctl_len += n;
  ctl_buf[ctl_len] = 0;
  char *nl;
  while ((nl = memchr(ctl_buf, '\n', ctl_len))) {
    *nl = 0;
    int rows, cols;
    if (sscanf(ctl_buf, "resize %d %d", &rows, &cols) == 2) set_winsize(rows, cols);
    else if (strcmp(ctl_buf, "kill") == 0) kill_requested = 1;
    size_t used = nl + 1 - ctl_buf;
    memmove(ctl_buf, nl + 1, ctl_len - used);
    ctl_len -= used;
  }
  if (ctl_len == sizeof ctl_buf - 1) ctl_len = 0; /* an overlong line: drop it */
}

static int receive_master(int listen_fd) {
  int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) return -1;
  char name[256];
  struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } c;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof c.buf};
  ssize_t n;
  do n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  close(conn);
  struct cmsghdr *h = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL;
  if (!h || h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS || h->cmsg_len != CMSG_LEN(sizeof(int))) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(h), sizeof fd);
  return fd;
}

static int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

static void note_reaped(pid_t pid, int status) {
  if (pid == runc_pid) {
    runc_done = 1;
    runc_status = status;
  } else if (proc_pid > 0 && pid == proc_pid) {
    proc_done = 1;
    proc_status = status;
  } else if (proc_pid <= 0 && n_early < (int)(sizeof early / sizeof early[0])) {
    early[n_early].pid = pid;
    early[n_early].status = status;
    n_early++;
  }
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) note_reaped(pid, status);
}

static pid_t read_pid_file(const char *path) {
  char buf[32] = {0};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  long pid = strtol(buf, NULL, 10);
  return pid > 0 ? (pid_t)pid : -1;
}

/* One step of a flow: read when its buffer is empty and src is ready, write what is buffered. */
static void pump(struct flow *f, int readable, int writable) {
  if (f->len == 0 && !f->src_eof && f->src >= 0 && readable) {
    ssize_t n = read(f->src, f->buf, sizeof f->buf);
    if (n > 0) {
      f->len = n;
      f->off = 0;
      if (proc_pid <= 0 && f != &fin) { /* keep the runtime's words for the error line (a tty gets them too) */
        size_t keep = (size_t)n > sizeof err_tail - 1 ? sizeof err_tail - 1 : (size_t)n;
        if (err_tail_len + keep > sizeof err_tail - 1) err_tail_len = 0;
        memcpy(err_tail + err_tail_len, f->buf + n - keep, keep);
        err_tail_len += keep;
      }
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      f->src_eof = 1; /* EOF, or EIO from a pty master whose last slave is closed */
    }
  }
  if (f->len > 0 && (writable || f->dst_bad)) {
    if (f->dst_bad || f->dst < 0) {
      f->len = 0;
      return;
    }
    ssize_t w = write(f->dst, f->buf + f->off, f->len);
    if (w > 0) {
      f->off += w;
      f->len -= w;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
      f->dst_bad = 1;
      f->len = 0;
    }
  }
}

/* Reads src until nothing more is there right now and writes it all out (blocking). */
static void drain(struct flow *f) {
  if (f->dst >= 0 && !f->dst_bad) set_nonblock(f->dst, 0);
  for (int i = 0; i < 4096; i++) {
    if (f->len > 0) pump(f, 0, 1);
    if (f->len > 0) continue;
    if (f->src_eof || f->src < 0) break;
    pump(f, 1, 0);
    if (f->len == 0) break; /* EAGAIN or EOF */
  }
}

static const char *cleanup_paths[8];
static int n_cleanup;

int main(int argc, char **argv) {
  const char *console_path = NULL, *pid_path = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--console-socket") == 0 && i + 1 < argc) console_path = argv[++i];
    else if (strcmp(argv[i], "--pid-file") == 0 && i + 1 < argc) pid_path = argv[++i];
    else if (strcmp(argv[i], "--cleanup") == 0 && i + 1 < argc && n_cleanup < 8) cleanup_paths[n_cleanup++] = argv[++i];
    else if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else die("unknown argument %s", argv[i]);
  }
  if (!pid_path || i >= argc) die("usage: berth-exec [--console-socket PATH] --pid-file PATH -- RUNTIME ARG...");
  tty_mode = console_path != NULL;
  if (fcntl(CTL_FD, F_GETFD) < 0) die("fd 3 (control) is not open");
  fcntl(CTL_FD, F_SETFD, FD_CLOEXEC);

  /* A session of our own: not berth's (nor its terminal's), and the one to clean up after. */
  if (getsid(0) != getpid() && setsid() < 0) die("setsid: %s", strerror(errno));
  /* Reparented orphans (the exec'd process, once runc exits) become our children. */
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) die("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask, old;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, &old);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("signalfd: %s", strerror(errno));

  int listen_fd = -1;
  if (tty_mode) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(console_path) >= sizeof sa.sun_path) die("console socket path too long");
    strcpy(sa.sun_path, console_path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    unlink(console_path);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(listen_fd, 1) < 0)
      die("console socket %s: %s", console_path, strerror(errno));
  }

  /* The process's stdio: pipes we relay (so output ends when it exits, not when the last
   * background child lets go); with a tty only the runtime's messages use them. */
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2];
  if (pipe2(err, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
  if (!tty_mode && (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)) die("pipe: %s", strerror(errno));

  runc_pid = fork();
  if (runc_pid < 0) die("fork: %s", strerror(errno));
  if (runc_pid == 0) {
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    dup2(tty_mode ? devnull : in[0], 0);
    dup2(tty_mode ? err[1] : out[1], 1);
    dup2(err[1], 2);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    execvp(argv[i], argv + i);
    fprintf(stderr, "berth-exec: %s: %s\n", argv[i], strerror(errno));
    _exit(127);
  }
  close(err[1]);
  if (!tty_mode) {
    close(in[0]);
    close(out[1]);
  }

  fin.src = 0;
  fin.dst = tty_mode ? -1 : in[1];
  fout.src = tty_mode ? -1 : out[0];
  fout.dst = 1;
  ferr.src = err[0];
  ferr.dst = 2;
  struct flow *flows[] = {&fin, &fout, &ferr};
  for (int k = 0; k < 3; k++) {
    if (flows[k]->src >= 0) set_nonblock(flows[k]->src, 1);
    if (flows[k]->dst >= 0) set_nonblock(flows[k]->dst, 1);
  }
  int sent_eof = 0, ctl_open = 1, killed = 0, idle_after_exit = 0, cleaned = 0, announced = 0;
  struct timespec kill_at = {0};

  for (;;) {
    if (kill_requested && proc_pid > 0 && !proc_done && !killed) {
      kill_session(proc_pid, proc_sid);
      killed = 1;
    }
    if (kill_requested && !runc_done && kill_at.tv_sec == 0) clock_gettime(CLOCK_MONOTONIC, &kill_at);
    /* (runc sends the master before the process runs: not having it once the process is gone
     * would be a runtime bug, so it is waited for only briefly) */
    if (proc_done && (!tty_mode || master_fd >= 0 || kill_requested || idle_after_exit)) break;
    if (runc_done && proc_pid <= 0) break; /* the runtime failed: there is no process */

    struct pollfd p[8];
    int np = 0, ictl = -1, isig, ilisten = -1, iflow[3][2];
    p[np] = (struct pollfd){.fd = sfd, .events = POLLIN};
    isig = np++;
    if (ctl_open) {
      p[np] = (struct pollfd){.fd = CTL_FD, .events = POLLIN};
      ictl = np++;
    }
    if (listen_fd >= 0) {
      p[np] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
      ilisten = np++;
    }
    for (int k = 0; k < 3; k++) {
      struct flow *f = flows[k];
      iflow[k][0] = iflow[k][1] = -1;
      int want_in = f->len == 0 && !f->src_eof && f->src >= 0 && (f->dst >= 0 || f->dst_bad);
      int want_out = f->len > 0 && f->dst >= 0 && !f->dst_bad;
      for (int s = 0; s < 2; s++) {
        int fd = s == 0 ? f->src : f->dst;
        short ev = s == 0 ? (want_in ? POLLIN : 0) : (want_out ? POLLOUT : 0);
        if (!ev) continue;
        int j = 0;
        while (j < np && p[j].fd != fd) j++;
        if (j == np) p[np++] = (struct pollfd){.fd = fd, .events = 0};
        p[j].events |= ev;
        iflow[k][s] = j;
      }
    }
    int timeout = kill_requested ? 100 : proc_done ? 500 : -1;
    int r = poll(p, np, timeout);
    if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    if (r < 0) continue;
    if (r == 0 && proc_done) idle_after_exit = 1;

    /* The master first: by the time runc's exit is seen its connection is already queued. */
    if (ilisten >= 0 && p[ilisten].revents) {
      int fd = receive_master(listen_fd);
      if (fd >= 0) {
        master_fd = fd;
        set_nonblock(master_fd, 1);
        fin.dst = master_fd;
        fout.src = master_fd;
        close(listen_fd);
        listen_fd = -1;
        unlink(console_path);
      }
    }
    if (ictl >= 0 && p[ictl].revents) {
      handle_ctl();
      if (kill_requested) ctl_open = 0;
    }
    if (p[isig].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si)
        if (si.ssi_signo != SIGCHLD) kill_requested = 1;
      reap();
      if (runc_done && !cleaned) {
        if (WIFEXITED(runc_status) && WEXITSTATUS(runc_status) == 0) proc_pid = read_pid_file(pid_path);
        unlink(pid_path);
        for (int k = 0; k < n_cleanup; k++) unlink(cleanup_paths[k]);
        cleaned = 1;
      }
      if (proc_pid > 0 && !announced) {
        announced = 1;
        proc_sid = session_of(proc_pid);
        if (proc_sid < 0) proc_sid = proc_pid;
        ctl_write("pid %d\n", (int)proc_pid);
        for (int k = 0; k < n_early; k++)
          if (early[k].pid == proc_pid) {
            proc_done = 1;
            proc_status = early[k].status;
          }
      }
    }
    for (int k = 0; k < 3; k++) {
      struct flow *f = flows[k];
      int rd = iflow[k][0] >= 0 && (p[iflow[k][0]].revents & (POLLIN | POLLHUP | POLLERR));
      int wr = iflow[k][1] >= 0 && (p[iflow[k][1]].revents & (POLLOUT | POLLHUP | POLLERR));
      pump(f, rd, wr);
    }
    /* End of berth's input: close the process's stdin, or type the terminal's EOF character. */
    if (fin.src_eof && fin.len == 0 && !sent_eof) {
      if (!tty_mode && fin.dst >= 0) {
        close(fin.dst);
        fin.dst = -1;
        sent_eof = 1;
      } else if (tty_mode && master_fd >= 0) {
        struct termios t;
        fin.buf[0] = tcgetattr(master_fd, &t) == 0 && t.c_cc[VEOF] ? t.c_cc[VEOF] : 4;
        fin.len = 1;
        fin.off = 0;
        sent_eof = 1;
      }
    }
    if (kill_at.tv_sec) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (!runc_done && now.tv_sec - kill_at.tv_sec > 10) kill(runc_pid, SIGKILL);
    }
  }

  /* The process has ended (or never ran): pass on what it wrote before it did, unless berth
   * has let go of the session. */
  if (!kill_requested) {
    drain(&fout);
    drain(&ferr);
  }
  if (proc_pid > 0 && proc_done) {
    ctl_write("exit %d\n", exit_code(proc_status));
  } else {
    for (size_t k = 0; k < err_tail_len; k++)
      if (err_tail[k] == '\n' || err_tail[k] == '\r') err_tail[k] = ' ';
    while (err_tail_len > 0 && err_tail[err_tail_len - 1] == ' ') err_tail_len--;
    err_tail[err_tail_len] = 0;
    ctl_write("error %s (exit status %d)\n", err_tail_len ? err_tail : "the runtime failed to start the process",
              runc_done ? exit_code(runc_status) : -1);
  }
  if (!cleaned) {
    unlink(pid_path);
    for (int k = 0; k < n_cleanup; k++) unlink(cleanup_paths[k]);
  }
  if (listen_fd >= 0) unlink(console_path); /* never connected: the runtime failed */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", pid_path);
  rmdir(dirname(dir)); /* only if empty: berth removes anything else it put there */
  return 0;
}
