// FUSE low-level handlers: a flat directory with one file per active device
// (named by its decimal id, inode id + 2), opened with direct I/O. fsync is
// the device's flush: it commits the pool.
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "daemon.h"
#include "io.h"

namespace tp {

namespace {

constexpr fuse_ino_t kRoot = 1;
constexpr int32_t kNotifyResend = 7;  // FUSE_NOTIFY_RESEND (Linux 6.9), newer than this libc's headers
constexpr size_t kMaxRequest = 1 << 20;

Daemon& daemonOf(fuse_req_t req) { return *static_cast<Daemon*>(fuse_req_userdata(req)); }

bool deviceSize(Daemon& d, fuse_ino_t ino, uint64_t& size) {
  if (ino < 2) return false;
  std::lock_guard l(d.mu);
  auto it = d.active.find(ino - 2);
  if (it == d.active.end()) return false;
  size = it->second;
  return true;
}

void fillAttr(struct stat& st, fuse_ino_t ino, uint64_t size) {
  memset(&st, 0, sizeof st);
  st.st_ino = ino;
  if (ino == kRoot) {
    st.st_mode = S_IFDIR | 0700;
    st.st_nlink = 2;
  } else {
    st.st_mode = S_IFREG | 0600;
    st.st_nlink = 1;
    st.st_size = off_t(size);
    st.st_blksize = 4096;
    st.st_blocks = off_t(size / 512);
  }
}

int errnoOf(const std::exception& e) {
  if (auto p = dynamic_cast<const PoolError*>(&e)) return p->err;
  return EIO;
}

void opInit(void*, struct fuse_conn_info* conn) {
  conn->max_write = kMaxRequest;
  conn->max_read = kMaxRequest;
  conn->max_readahead = 0;
  // The loop device keeps up to 128 requests queued; FUSE's default of 12
  // background (async direct I/O) requests in flight was the limit here.
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

void opLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Daemon& d = daemonOf(req);
  char* end = nullptr;
  unsigned long long id = strtoull(name, &end, 10);
  uint64_t size;
  if (parent != kRoot || !*name || *end || !deviceSize(d, id + 2, size)) return (void)fuse_reply_err(req, ENOENT);
  fuse_entry_param e{};
  e.ino = id + 2;
  e.generation = 1;
  fillAttr(e.attr, e.ino, size);
  fuse_reply_entry(req, &e);
}

void opGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  uint64_t size = 0;
  if (ino != kRoot && !deviceSize(daemonOf(req), ino, size)) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  fillAttr(st, ino, size);
  fuse_reply_attr(req, &st, 0);
}

void opReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  if (ino != kRoot) return (void)fuse_reply_err(req, ENOTDIR);
  Daemon& d = daemonOf(req);
  std::vector<std::pair<std::string, fuse_ino_t>> names = {{".", kRoot}, {"..", kRoot}};
  {
    std::lock_guard l(d.mu);
    for (auto& [id, sz] : d.active) names.emplace_back(std::to_string(id), id + 2);
  }
  std::vector<char> buf(size);
  size_t used = 0;
  for (size_t i = size_t(off); i < names.size(); i++) {
    struct stat st{};
    st.st_ino = names[i].second;
    st.st_mode = names[i].second == kRoot ? S_IFDIR : S_IFREG;
    size_t n = fuse_add_direntry(req, buf.data() + used, size - used, names[i].first.c_str(), &st, off_t(i + 1));
    if (n > size - used) break;
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void opOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Daemon& d = daemonOf(req);
  uint64_t size;
  if (!deviceSize(d, ino, size)) return (void)fuse_reply_err(req, ENOENT);
  {
    std::lock_guard l(d.mu);
    d.opens[ino - 2]++;
    publishActive(d);
  }
  fi->direct_io = 1;
  fi->keep_cache = 0;
  fi->fh = ino - 2;
  if (fuse_reply_open(req, fi) != 0) {
    std::lock_guard l(d.mu);
    d.opens[ino - 2]--;
    publishActive(d);
  }
}

void opRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Daemon& d = daemonOf(req);
  {
    std::lock_guard l(d.mu);
    if (--d.opens[ino - 2] <= 0) d.opens.erase(ino - 2);
    publishActive(d);
  }
  fuse_reply_err(req, 0);
}

void opRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Daemon& d = daemonOf(req);
  uint64_t devSize;
  if (!deviceSize(d, ino, devSize)) return (void)fuse_reply_err(req, ENOENT);
  if (uint64_t(off) >= devSize) return (void)fuse_reply_buf(req, nullptr, 0);
  size = size_t(std::min<uint64_t>(size, devSize - uint64_t(off)));
  // Aligned (the pool reads into it with O_DIRECT) and of huge pages (the kernel pins it to copy the reply out).
  thread_local AlignedBuffer buf;
  ReadAhead::DeviceRef ra = d.readAhead->device(ino - 2);
  auto reply = [&](const uint8_t* p) { fuse_reply_buf(req, reinterpret_cast<const char*>(p), size); };
  try {
    if (!d.readAhead->serve(*ra, uint64_t(off), size, reply)) {
      uint8_t* mem = buf.get(std::max(size, kMaxRequest));
      d.pool->read(ino - 2, uint64_t(off), mem, size);
      reply(mem);
    }
  } catch (const std::exception& e) {
    return (void)fuse_reply_err(req, errnoOf(e));
  }
  d.readAhead->after(*ra, ino - 2, uint64_t(off), size, devSize);  // answered first: the next window costs the reader nothing
}

void opWrite(fuse_req_t req, fuse_ino_t ino, const char* data, size_t size, off_t off, fuse_file_info*) {
  Daemon& d = daemonOf(req);
  uint64_t devSize;
  if (!deviceSize(d, ino, devSize)) return (void)fuse_reply_err(req, ENOENT);
  if (uint64_t(off) + size > devSize) return (void)fuse_reply_err(req, EFBIG);
  try {
    d.pool->write(ino - 2, uint64_t(off), reinterpret_cast<const uint8_t*>(data), size);
    fuse_reply_write(req, size);
  } catch (const std::exception& e) {
    fuse_reply_err(req, errnoOf(e));
  }
}

void opFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  try {
    daemonOf(req).pool->commit();
    fuse_reply_err(req, 0);
  } catch (const std::exception& e) {
    fuse_reply_err(req, errnoOf(e));
  }
}

void opFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void opFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info*) {
  Daemon& d = daemonOf(req);
  uint64_t devSize;
  if (!deviceSize(d, ino, devSize)) return (void)fuse_reply_err(req, ENOENT);
  bool punch = (mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_KEEP_SIZE);
  bool zero = mode & FALLOC_FL_ZERO_RANGE;
  if (mode == 0 || mode == FALLOC_FL_KEEP_SIZE) return (void)fuse_reply_err(req, 0);  // space is thin
  if (!punch && !zero) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if (uint64_t(off) >= devSize) return (void)fuse_reply_err(req, 0);
  uint64_t n = std::min<uint64_t>(uint64_t(len), devSize - uint64_t(off));
  try {
    d.pool->discard(ino - 2, uint64_t(off), n);
    fuse_reply_err(req, 0);
  } catch (const std::exception& e) {
    fuse_reply_err(req, errnoOf(e));
  }
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops o{};
  o.init = opInit;
  o.lookup = opLookup;
  o.getattr = opGetattr;
  o.readdir = opReaddir;
  o.open = opOpen;
  o.release = opRelease;
  o.read = opRead;
  o.write = opWrite;
  o.fsync = opFsync;
  o.flush = opFlush;
  o.fallocate = opFallocate;
  return o;
}();

}  // namespace

void resumeSession(Daemon& d);

void fuseMount(Daemon& d) {
  const char* argv[] = {"strata-poold", "-o", "fsname=strata-pool,subtype=strata-pool,max_read=1048576"};
  fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  d.session = fuse_session_new(&args, &kOps, sizeof kOps, &d);
  if (!d.session) throw PoolError(EIO, "cannot create the FUSE session");
  if (d.resumeFuseFd >= 0) return resumeSession(d);
  if (fuse_session_mount(d.session, d.mountPoint.c_str()) != 0)
    throw PoolError(EIO, "cannot mount FUSE at \"" + d.mountPoint + "\"");
}

// Serves the connection of a daemon that died (see shared.h). libfuse takes
// an open /dev/fuse descriptor as the mount point "/dev/fd/N"; it answers no
// request before it has seen INIT, so the INIT the kernel sent at mount is
// processed again (its answer goes nowhere: the kernel has no such request
// any more); then the kernel is asked to send again every request the dead
// daemon had read and not answered (FUSE_NOTIFY_RESEND, Linux 6.9).
void resumeSession(Daemon& d) {
  std::string fdPath = "/dev/fd/" + std::to_string(d.resumeFuseFd);
  if (fuse_session_mount(d.session, fdPath.c_str()) != 0)
    throw PoolError(EIO, "cannot take over the FUSE connection " + fdPath);
  uint32_t len = d.shared->initLen;
  if (len < sizeof(fuse_in_header) || len > kInitBytes) throw PoolError(EIO, "no FUSE INIT request kept to resume with");
  std::vector<uint8_t> init(d.shared->init, d.shared->init + len);
  fuse_buf buf{};
  buf.mem = init.data();
  buf.size = len;
  fuse_session_process_buf(d.session, &buf);
  fuse_out_header resend{};
  resend.len = sizeof resend;
  resend.error = kNotifyResend;
  if (write(fuse_session_fd(d.session), &resend, sizeof resend) != ssize_t(sizeof resend))
    fprintf(stderr, "strata-poold: FUSE_NOTIFY_RESEND failed: %s\n", strerror(errno));
}

void publishActive(Daemon& d) {
  if (!d.shared) return;
  uint32_t next = 1 - d.shared->currentTable.load();
  ActiveTable& t = d.shared->tables[next];
  uint32_t n = 0;
  for (auto& [id, size] : d.active) {
    if (n == kMaxActive) break;
    auto o = d.opens.find(id);
    t.slots[n++] = ActiveSlot{id, size, o == d.opens.end() ? 0 : o->second};
  }
  t.n = n;
  d.shared->currentTable.store(next, std::memory_order_release);  // a table is current only once whole
}

void restoreActive(Daemon& d) {
  std::lock_guard l(d.mu);
  const ActiveTable& t = d.shared->tables[d.shared->currentTable.load(std::memory_order_acquire) & 1];
  for (uint32_t i = 0; i < t.n && i < kMaxActive; i++) {
    d.active[t.slots[i].id] = t.slots[i].size;
    if (t.slots[i].opens > 0) d.opens[t.slots[i].id] = int(t.slots[i].opens);
  }
  publishActive(d);
}

}  // namespace tp
