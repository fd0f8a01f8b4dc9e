// strata-poold: `format` writes empty dm-thin metadata; `serve` runs the
// pool daemon (FUSE mount + control socket) until the pool is closed.
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <signal.h>
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

int serve(std::map<std::string, std::string>& f) {
  Pool pool(need(f, "metadata"), need(f, "data"));
  Daemon d;
  d.pool = &pool;
  ReadAhead readAhead(pool);
  d.readAhead = &readAhead;
  d.mountPoint = need(f, "mount");
  d.socketPath = need(f, "socket");
  signal(SIGPIPE, SIG_IGN);
  pool.commit();  // a pool opened with shared nodes is rewritten unshared now
  int listenFd = controlListen(d.socketPath + ".tmp");
  fuseMount(d);
  fuse_set_signal_handlers(d.session);
  // The socket appears under its real name only once everything is ready.
  if (rename((d.socketPath + ".tmp").c_str(), d.socketPath.c_str()) != 0)
    throw PoolError(errno, "cannot publish the control socket");
  fprintf(stderr, "strata-poold: serving %s on %s\n", need(f, "metadata").c_str(), d.mountPoint.c_str());

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

}  // namespace

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
    if (cmd == "serve") return serve(f);
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
