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
#include "shared.h"

struct fuse_session;

namespace tp {

/** State shared by the FUSE handlers and the control thread. */
struct Daemon {
  Pool* pool = nullptr;
  ReadAhead* readAhead = nullptr;
  std::string mountPoint, socketPath;
  fuse_session* session = nullptr;
  std::mutex mu;  // guards `active` and `opens`
  std::map<uint64_t, uint64_t> active;  // device id -> size in bytes
  std::map<uint64_t, int> opens;        // device id -> open file handles
  std::atomic<bool> closing{false};
  std::atomic<bool> unmounted{false};  // see unmountOnce
  /** State that outlives this process (see shared.h); `active` and `opens` are mirrored into it. */
  SharedState* shared = nullptr;
  /** The /dev/fuse descriptor of a daemon that died, to serve on; -1 for a new mount. */
  int resumeFuseFd = -1;
};

/** What `strata-poold serve` was asked for, and what the keeper hands its worker. */
struct ServeOptions {
  std::string metadata, data, mount, socket;
  std::string pidFile;        // the serving process's pid (the one a caller would kill)
  std::string keeperPidFile;  // the keeper's pid
  int stateFd = -1;           // the shared state memfd (shared.h)
  int keeperSock = -1;        // where a new worker sends its /dev/fuse descriptor
  int resumeFuseFd = -1;      // a dead worker's /dev/fuse descriptor, to serve on
};

/**
 * The process `serve` runs as: makes the shared state, runs the worker in a
 * child, keeps a duplicate of its /dev/fuse descriptor and, when the worker
 * dies while serving, starts a new one on the same connection. Returns the
 * exit status.
 */
int runKeeper(const ServeOptions& o);
/** The pool daemon proper (a child of the keeper). Returns the exit status. */
int serveWorker(const ServeOptions& o);

/** Mirrors `active` and `opens` into the shared state (with `d.mu` held). */
void publishActive(Daemon& d);
/** Loads `active` and `opens` from the shared state (a daemon taking over). */
void restoreActive(Daemon& d);

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
