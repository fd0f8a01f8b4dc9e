// The control socket: one request line, one answer line per exchange.
// Answers are "ok[ PAYLOAD]" or "err ERRNO_NAME message".
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "daemon.h"

namespace tp {

namespace {

uint64_t number(const std::vector<std::string>& w, size_t i) {
  if (i >= w.size()) throw PoolError(EINVAL, "missing argument");
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(w[i].c_str(), &end, 10);
  if (w[i].empty() || *end || errno || w[i][0] == '-') throw PoolError(EINVAL, "bad number \"" + w[i] + "\"");
  return v;
}

void requireInactive(Daemon& d, uint64_t id) {
  std::lock_guard l(d.mu);
  if (d.active.count(id)) throw PoolError(EBUSY, "thin device " + std::to_string(id) + " is active");
}

std::string message(Daemon& d, const std::vector<std::string>& w) {
  if (w.size() < 2) throw PoolError(EINVAL, "empty message");
  const std::string& m = w[1];
  if (m == "create_thin" && w.size() == 3) {
    d.pool->createThin(number(w, 2));
  } else if (m == "create_snap" && w.size() == 4) {
    d.pool->createSnap(number(w, 2), number(w, 3));
  } else if (m == "delete" && w.size() == 3) {
    requireInactive(d, number(w, 2));
    d.pool->deleteDevice(number(w, 2));
  } else if (m == "set_transaction_id" && w.size() == 4) {
    d.pool->setTransactionId(number(w, 2), number(w, 3));
  } else {
    throw PoolError(EINVAL, "unknown message \"" + m + "\" or wrong arguments");
  }
  return "";
}

// Runs one request; returns the payload or throws PoolError.
std::string handle(Daemon& d, const std::string& line, bool& close) {
  std::istringstream in(line);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  if (w.empty()) throw PoolError(EINVAL, "empty request");
  const std::string& cmd = w[0];
  if (cmd == "ping") return "";
  if (cmd == "message") return message(d, w);
  if (cmd == "status") return d.pool->statusLine();
  if (cmd == "info") return d.pool->infoJson();
  if (cmd == "commit") {
    d.pool->commit();
    return "";
  }
  if (cmd == "grow") {
    d.pool->grow(number(w, 1));
    return "";
  }
  if (cmd == "grow-metadata") {
    d.pool->growMetadata(number(w, 1));
    return "";
  }
  if (cmd == "activate") {
    uint64_t id = number(w, 1), size = number(w, 2);
    if (!d.pool->hasDevice(id)) throw PoolError(ENODEV, "no thin device " + std::to_string(id));
    if (size == 0 || size % 512) throw PoolError(EINVAL, "device size must be a positive multiple of 512");
    std::lock_guard l(d.mu);
    auto it = d.active.find(id);
    if (it != d.active.end() && it->second != size)
      throw PoolError(EBUSY, "thin device " + std::to_string(id) + " is active with another size");
    d.active[id] = size;
    publishActive(d);
    return d.mountPoint + "/" + std::to_string(id);
  }
  if (cmd == "deactivate") {
    uint64_t id = number(w, 1);
    {
      std::lock_guard l(d.mu);
      if (d.opens.count(id)) throw PoolError(EBUSY, "thin device " + std::to_string(id) + " is open");
      d.active.erase(id);
      publishActive(d);
    }
    d.readAhead->forget(id);
    std::string name = std::to_string(id);
    fuse_lowlevel_notify_inval_entry(d.session, 1, name.c_str(), name.size());
    d.pool->commit();
    return "";
  }
  if (cmd == "close") {
    {
      std::lock_guard l(d.mu);
      if (!d.active.empty()) throw PoolError(EBUSY, "thin devices are still active");
    }
    d.pool->commit();
    close = true;
    return "";
  }
  throw PoolError(EINVAL, "unknown request \"" + cmd + "\"");
}

std::string errName(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "EIO";
}

}  // namespace

int controlListen(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw PoolError(ENAMETOOLONG, "control socket path too long");
  strcpy(addr.sun_path, path.c_str());
  unlink(path.c_str());
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 16) != 0)
    throw PoolError(errno, "cannot listen on \"" + path + "\": " + strerror(errno));
  return fd;
}

void controlServe(Daemon& d, int listenFd) {
  for (;;) {
    int c = accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR) continue;
      return;
    }
    std::string buf;
    char chunk[4096];
    bool close = false;
    for (;;) {
      size_t nl = buf.find('\n');
      if (nl == std::string::npos) {
        ssize_t n = ::read(c, chunk, sizeof chunk);
        if (n <= 0) break;
        buf.append(chunk, size_t(n));
        continue;
      }
      std::string line = buf.substr(0, nl), answer;
      buf.erase(0, nl + 1);
      try {
        std::string payload = handle(d, line, close);
        answer = payload.empty() ? "ok\n" : "ok " + payload + "\n";
      } catch (const PoolError& e) {
        answer = "err " + errName(e.err) + " " + e.what() + "\n";
      } catch (const std::exception& e) {
        answer = std::string("err EIO ") + e.what() + "\n";
      }
      for (size_t off = 0; off < answer.size();) {
        ssize_t n = ::write(c, answer.data() + off, answer.size() - off);
        if (n <= 0) break;
        off += size_t(n);
      }
      if (close) break;
    }
    ::close(c);
    if (close) {
      d.closing = true;
      fuse_session_exit(d.session);
      unmountOnce(d);
      ::close(listenFd);
      return;
    }
  }
}

}  // namespace tp
