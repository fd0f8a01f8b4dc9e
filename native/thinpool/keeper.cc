// The keeper: the process `strata-poold serve` runs as. It makes the shared
// state (shared.h), starts the pool daemon proper in a child, and keeps a
// duplicate of the child's /dev/fuse descriptor. The kernel ends a FUSE
// connection only when its last descriptor closes, so when the child dies
// while serving (SIGKILL, a crash), the thin devices' loop devices keep
// their files: the keeper starts a new child on the same connection, which
// replays the mappings made since the last commit and has the kernel resend
// what the dead one had read. A child that ends cleanly (close, a signal)
// ends the keeper; one that dies before it served, or one that keeps dying,
// too (the connection then ends with the keeper, as it did without one).
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>

#include "daemon.h"

namespace tp {

namespace {

volatile sig_atomic_t gChild = 0;

// Termination requests go to the worker, which closes the pool cleanly.
void forward(int sig) {
  if (gChild > 0) kill(gChild, sig);
}

// Waits for the first worker's /dev/fuse descriptor; -1 when it ended first.
int receiveFuseFd(int sock) {
  char data;
  iovec iov{&data, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  cmsghdr* c = n == 1 ? CMSG_FIRSTHDR(&msg) : nullptr;
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

int exitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace

int runKeeper(const ServeOptions& options) {
  ServeOptions o = options;
  o.stateFd = createSharedState();
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
    throw PoolError(errno, "cannot make the keeper's socket pair");
  struct sigaction sa{};
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  if (!o.keeperPidFile.empty()) {
    FILE* f = fopen(o.keeperPidFile.c_str(), "w");
    if (f) {
      fprintf(f, "%d\n", int(getpid()));
      fclose(f);
    }
  }
  int fuseFd = -1;
  std::deque<std::chrono::steady_clock::time_point> restarts;
  for (;;) {
    // Inherited across fork (not exec): the worker serves in the child's copy of this process.
    pid_t child = fork();
    if (child < 0) throw PoolError(errno, "cannot start the pool daemon");
    if (child == 0) {
      close(sp[0]);
      ServeOptions w = o;
      w.keeperSock = fuseFd < 0 ? sp[1] : -1;
      w.resumeFuseFd = fuseFd;
      int rc;
      try {
        rc = serveWorker(w);
      } catch (const PoolError& e) {
        fprintf(stderr, "strata-poold: %s: %s\n", strerrorname_np(e.err) ? strerrorname_np(e.err) : "EIO", e.what());
        rc = 1;
      } catch (const std::exception& e) {
        fprintf(stderr, "strata-poold: EIO: %s\n", e.what());
        rc = 1;
      }
      fflush(stderr);
      _exit(rc);
    }
    gChild = child;
    if (fuseFd < 0) {
      close(sp[1]);  // the child has it: the keeper reads end of file if the child ends first
      sp[1] = -1;
      fuseFd = receiveFuseFd(sp[0]);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    gChild = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;  // closed cleanly
    if (fuseFd < 0) return exitStatus(status);                   // never served: nothing to keep
    auto now = std::chrono::steady_clock::now();
    restarts.push_back(now);
    while (now - restarts.front() > std::chrono::seconds(60)) restarts.pop_front();
    if (restarts.size() > 5) {
      fprintf(stderr, "strata-poold: the pool daemon died %zu times in a minute; giving up its FUSE connection\n",
              restarts.size());
      return 1;
    }
    fprintf(stderr, "strata-poold: the pool daemon %d ended (status %d); starting a new one on its connection\n",
            int(child), exitStatus(status));
    fflush(stderr);
  }
}

}  // namespace tp
