// The pool daemon: active thin devices as files on a FUSE mount, a control
// socket for messages, and a timer that commits at least once a second.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "pool.h"
#include "readahead.h"

struct fuse_session;

namespace tp {

/** State shared by the FUSE handlers and the control thread. */
struct Daemon {
  Pool* pool = nullptr;
  ReadAhead* readAhead = nullptr;
  std::string mountPoint, socketPath;
  fuse_session* session = nullptr;
  std::mutex mu;                        // guards `active` and `opens`
  std::map<uint64_t, uint64_t> active;  // device id -> size in bytes
  std::map<uint64_t, int> opens;        // device id -> open file handles
  std::atomic<bool> closing{false};
  std::atomic<bool> unmounted{false};  // see unmountOnce
};

/** Creates the FUSE session and mounts it; throws on failure. */
void fuseMount(Daemon& d);
/** Serves FUSE requests on worker threads until the session ends (unmounted, or a signal). */
int fuseServe(Daemon& d);
/** Unmounts the FUSE mount unless already done (close request, signal, shutdown). */
void unmountOnce(Daemon& d);
/** Binds and listens on the control socket; returns the listening fd. */
int controlListen(const std::string& path);
/** Answers control connections until `close` is requested. */
void controlServe(Daemon& d, int listenFd);

}  // namespace tp
