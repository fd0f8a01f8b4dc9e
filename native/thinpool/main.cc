// strata-poold: `format` writes empty dm-thin metadata; `serve` runs the
// pool daemon (FUSE mount + control socket) until the pool is closed, under
// a keeper process that restarts it on the same FUSE connection if it dies
// (keeper.cc).
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "daemon.h"

using namespace tp;

namespace {

std::map<std::string, std::string> parseFlags(int argc, char** argv) {
  std::map<std::string, std::string> f;
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) throw PoolError(EINVAL, "bad argument \"" + a + "\"");
    f[a.substr(2)] = argv[++i];
  }
  return f;
}

std::string need(std::map<std::string, std::string>& f, const char* k) {
  auto it = f.find(k);
  if (it == f.end()) throw PoolError(EINVAL, std::string("missing --") + k);
  return it->second;
}

// Writes `pid` to `path` (temporary file, then rename).
void writePidFile(const std::string& path, pid_t pid) {
  if (path.empty()) return;
  std::string tmp = path + ".tmp";
  FILE* f = fopen(tmp.c_str(), "w");
  if (!f || fprintf(f, "%d\n", int(pid)) < 0 || fclose(f) != 0 || rename(tmp.c_str(), path.c_str()) != 0)
    throw PoolError(errno, "cannot write \"" + path + "\"");
}

// Hands the FUSE connection's descriptor to the keeper, so that it outlives this process.
void sendFuseFd(int sock, int fuseFd) {
  char data = 'F';
  iovec iov{&data, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fuseFd, sizeof(int));
  if (sendmsg(sock, &msg, 0) != 1) throw PoolError(errno, "cannot hand the FUSE connection to the keeper");
}

}  // namespace

int tp::serveWorker(const ServeOptions& o) {
  SharedState* shared = mapSharedState(o.stateFd);
  Pool pool(o.metadata, o.data);
  Daemon d;
  d.pool = &pool;
  ReadAhead readAhead(pool);
  d.readAhead = &readAhead;
  d.mountPoint = o.mount;
  d.socketPath = o.socket;
  d.shared = shared;
  d.resumeFuseFd = o.resumeFuseFd;
  signal(SIGPIPE, SIG_IGN);
  // A daemon taking over replays the mappings its predecessor made since its last commit.
  bool replayed = pool.attachJournal(shared);
  if (d.resumeFuseFd >= 0) restoreActive(d);
  pool.commit();  // the replayed mappings; a pool opened with shared nodes is rewritten unshared
  int listenFd = controlListen(d.socketPath + ".tmp");
  fuseMount(d);
  if (d.resumeFuseFd < 0) sendFuseFd(o.keeperSock, fuse_session_fd(d.session));
  if (o.keeperSock >= 0) close(o.keeperSock);
  fuse_set_signal_handlers(d.session);
  writePidFile(o.pidFile, getpid());
  // The socket appears under its real name only once everything is ready.
  if (rename((d.socketPath + ".tmp").c_str(), d.socketPath.c_str()) != 0)
    throw PoolError(errno, "cannot publish the control socket");
  if (d.resumeFuseFd >= 0)
    fprintf(stderr, "strata-poold: took over serving %s on %s (%s)\n", o.metadata.c_str(), d.mountPoint.c_str(),
            replayed ? "mappings since the last commit replayed" : "nothing to replay");
  else
    fprintf(stderr, "strata-poold: serving %s on %s\n", o.metadata.c_str(), d.mountPoint.c_str());

  std::mutex timerMu;
  std::condition_variable timerCv;
  bool stop = false;
  std::thread timer([&] {
    std::unique_lock l(timerMu);
    while (!stop) {
      timerCv.wait_for(l, std::chrono::seconds(1));
      try {
        if (pool.dirty()) pool.commit();
      } catch (const std::exception& e) {
        fprintf(stderr, "strata-poold: periodic commit failed: %s\n", e.what());
      }
    }
  });
  std::thread control([&] { controlServe(d, listenFd); });
  control.detach();  // it returns after `close`; exit() ends it otherwise

  int rc = fuseServe(d);
  {
    std::lock_guard l(timerMu);
    stop = true;
  }
  timerCv.notify_all();
  timer.join();
  pool.commit();
  fuse_remove_signal_handlers(d.session);
  unmountOnce(d);  // `close` or a signal may have unmounted already
  fuse_session_destroy(d.session);
  unlink(d.socketPath.c_str());
  fprintf(stderr, "strata-poold: pool closed (%s)\n", d.closing ? "close request" : "FUSE session ended");
  return rc < 0 && !d.closing ? 1 : 0;
}

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  try {
    auto f = parseFlags(argc, argv);
    if (cmd == "format") {
      uint64_t block = f.count("block-size") ? std::stoull(f["block-size"]) : 65536;
      uint64_t dataSize = f.count("data-size") ? std::stoull(f["data-size"]) : 0;
      Pool::format(need(f, "metadata"), need(f, "data"), uint32_t(block), dataSize);
      return 0;
    }
    if (cmd == "serve") {
      ServeOptions o;
      o.metadata = need(f, "metadata");
      o.data = need(f, "data");
      o.mount = need(f, "mount");
      o.socket = need(f, "socket");
      o.pidFile = f.count("pid-file") ? f["pid-file"] : "";
      o.keeperPidFile = f.count("keeper-pid-file") ? f["keeper-pid-file"] : "";
      return runKeeper(o);
    }
    fprintf(stderr, "usage: strata-poold format|serve --metadata FILE --data FILE [...]\n");
    return 2;
  } catch (const PoolError& e) {
    fprintf(stderr, "strata-poold: %s: %s\n", strerrorname_np(e.err) ? strerrorname_np(e.err) : "EIO", e.what());
    return 1;
  } catch (const std::exception& e) {
    fprintf(stderr, "strata-poold: EIO: %s\n", e.what());
    return 1;
  }
}
