// What a restarted daemon needs from the one that died, in memory that
// outlives it: a memfd the keeper process holds (keeper.cc). The FUSE
// connection survives the daemon (the keeper holds a duplicate of its
// /dev/fuse descriptor), so the devices' loop devices keep working if a new
// daemon takes over exactly where the old one was:
// - the mapping journal: every change to a device's mapping since the last
//   commit (new blocks written, blocks discarded), appended under the pool's
//   state lock before the request is answered, and replayed on top of the
//   last commit; without it a still-mounted filesystem would read old
//   contents of blocks it has overwritten;
// - the active devices (id, size, open handles);
// - the FUSE INIT request the kernel sent at mount, replayed into the new
//   libfuse session (libfuse answers nothing before it has seen one).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace tp {

/** One journal record: device `dev`'s virtual block `vblock` maps to `blockTime` (block << 24 | time), or is unmapped. */
struct JournalRecord {
  std::atomic<uint64_t> seq;  // written last: a record is valid when seq is the one expected at its slot
  uint64_t dev, vblock, blockTime;
};

/** An active device as the FUSE handlers see it. */
struct ActiveSlot {
  uint64_t id, size;
  int64_t opens;
};

/** Every active device; written whole into the table not in use, then made current. */
struct ActiveTable {
  uint32_t n;
  ActiveSlot slots[4096];
};

constexpr uint64_t kUnmapRecord = ~uint64_t(0);
constexpr size_t kMaxActive = sizeof(ActiveTable::slots) / sizeof(ActiveSlot);
constexpr size_t kInitBytes = 4096;
constexpr uint64_t kJournalRecords = 1 << 19;  // 16 MiB; a commit every second keeps it far from full

/** The layout of the memfd. */
struct SharedState {
  uint64_t magic;
  /** Journal records up to this seq are in the committed metadata. */
  std::atomic<uint64_t> commitSeq;
  uint32_t initLen;
  uint8_t init[kInitBytes];
  std::atomic<uint32_t> currentTable;
  ActiveTable tables[2];
  JournalRecord journal[kJournalRecords];
};

/** A memfd holding a fresh SharedState; throws PoolError. */
int createSharedState();
/** Maps the SharedState of memfd `fd`; throws PoolError when it is not one. */
SharedState* mapSharedState(int fd);

}  // namespace tp
