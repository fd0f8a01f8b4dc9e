#include "apply/tar_apply.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "apply/apply_pool.h"

namespace strata {
namespace {

constexpr int64_t kSmallBody = 1 << 20;         // bodies up to this size travel in one op
constexpr int64_t kMaxMetaRecord = 16 << 20;    // PAX and GNU records larger than this are refused
constexpr size_t kMaxWarnings = 100;            // kept per write; later ones are counted
constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kWhiteoutMetaPrefix[] = ".wh..wh.";
constexpr char kWhiteoutLinkDir[] = ".wh..wh.plnk";
constexpr char kWhiteoutOpaque[] = ".wh..wh..opq";

TarError Breakout(const std::string& why) { return TarError("ERR_BREAKOUT", "Cannot apply the entry: " + why); }

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

bool StartsWith(std::string_view s, std::string_view prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

int64_t Padding(int64_t size) { return (kTarBlock - size % kTarBlock) % kTarBlock; }

// Pushes the components of a relative path onto `stack` as posix.normalize
// would; false when a ".." would climb above the start.
bool Walk(std::vector<std::string_view>& stack, std::string_view path) {
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view c = path.substr(i, j - i);
    if (c == "..") {
      if (stack.empty()) return false;
      stack.pop_back();
    } else if (!c.empty() && c != ".") {
      stack.push_back(c);
    }
    i = j + 1;
  }
  return true;
}

std::string Join(const std::vector<std::string_view>& parts) {
  std::string out;
  for (auto& p : parts) {
    if (!out.empty()) out += '/';
    out.append(p);
  }
  return out;
}

// cleanEntryPath (src/archive/paths.ts): "" for the root.
std::string CleanEntryPath(const std::string& name) {
  if (name.find('\0') != std::string::npos) throw Breakout("NUL byte in name " + Quoted(name));
  if (!name.empty() && name[0] == '/') throw Breakout("absolute path " + Quoted(name));
  std::vector<std::string_view> stack;
  if (!Walk(stack, name)) throw Breakout("path escapes the layer root " + Quoted(name));
  return Join(stack);
}

// [dirname, basename] of a cleaned path, "" for the root's children's parent.
std::pair<std::string, std::string> Split(const std::string& rel) {
  size_t slash = rel.rfind('/');
  if (slash == std::string::npos) return {"", rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}

// Docker's symlink check: a relative target must not climb out of the root
// from the link's directory. An empty target is malformed (symlink(2) refuses it).
void AssertSafeSymlink(const std::string& rel, const std::string& target) {
  if (target.empty()) throw TarFormat("empty symlink target for " + Quoted(rel));
  if (target.find('\0') != std::string::npos) throw Breakout("NUL byte in link of " + Quoted(rel));
  if (!target.empty() && target[0] == '/') return;
  std::vector<std::string_view> stack;
  std::string parent = Split(rel).first;
  if (!Walk(stack, parent) || !Walk(stack, target))
    throw Breakout("invalid symlink " + Quoted(rel) + " -> " + Quoted(target));
}

uint32_t MapId(int64_t id, const std::vector<IdRange>& map, const char* what) {
  if (map.empty()) return static_cast<uint32_t>(id);
  for (auto& m : map)
    if (id >= m.container && id < static_cast<int64_t>(m.container) + m.size) return m.host + (id - m.container);
  throw TarError("ERR_ID_MAP",
                 std::string("Cannot apply the entry: ") + what + " " + std::to_string(id) + " is not in the id map");
}

uint32_t Kind(EntryType t) {
  switch (t) {
    case EntryType::kDir:
      return kKindDir;
    case EntryType::kFile:
      return kKindFile;
    case EntryType::kSymlink:
      return kKindSymlink;
    case EntryType::kLink:
      return kKindLink;
    case EntryType::kChar:
      return kKindChar;
    case EntryType::kBlock:
      return kKindBlock;
    case EntryType::kFifo:
      return kKindFifo;
  }
  return 0;
}

void Varint(std::string& out, uint64_t n) {
  do {
    uint8_t b = n & 0x7f;
    n >>= 7;
    if (n) b |= 0x80;
    out += static_cast<char>(b);
  } while (n);
}

// Xattrs a layer may not set (src/diff/README.md, "Xattrs"): overlayfs's
// own metadata, which would make the overlay driver show another tree than
// the others (a hidden directory, a whited-out file, a redirect), and LSM
// labels, which are the host's policy, not the image's (containers/storage
// ignores security.selinux too). security.capability, security.ima/evm,
// ACLs and other user.* / trusted.* xattrs are kept.
bool KernelMetadataXattr(const std::string& key) {
  return StartsWith(key, "trusted.overlay.") || StartsWith(key, "user.overlay.") || key == "security.selinux" ||
         key == "security.apparmor" || StartsWith(key, "security.SMACK64");
}

// What a PAX or GNU record is called in messages.
const char* MetaRecordName(char flag) {
  return flag == 'x' ? "PAX header" : flag == 'g' ? "global PAX header" : "GNU long name";
}

std::string TempDir() {
  const char* t = getenv("TMPDIR");
  std::string dir = t && *t ? t : "/tmp";
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

}  // namespace

TarApply::~TarApply() {
  if (stashFd_ >= 0) close(stashFd_);
  if (plnkDir_.empty()) return;
  for (auto& kv : plnk_) unlink((plnkDir_ + "/" + Split(kv.first).second).c_str());
  if (body_ == Body::kStash) unlink((plnkDir_ + "/" + Split(curRel_).second).c_str());  // a stash cut short
  rmdir(plnkDir_.c_str());
}

bool TarApply::Feed(const uint8_t* p, size_t n) {
  size_t pos = 0;
  while (pos < n) {
    switch (state_) {
      case State::kHeader: {
        if (stage_.empty() && n - pos >= kTarBlock) {
          pos += kTarBlock;
          if (!Header(p + pos - kTarBlock, p, n, &pos)) return false;
          break;
        }
        size_t k = std::min(kTarBlock - stage_.size(), n - pos);
        stage_.append(reinterpret_cast<const char*>(p + pos), k);
        pos += k;
        if (stage_.size() < kTarBlock) return true;
        std::string block;
        block.swap(stage_);  // Header may stage a PAX record next
        if (!Header(reinterpret_cast<const uint8_t*>(block.data()), p, n, &pos)) return false;
        break;
      }
      case State::kMeta: {
        size_t k = std::min(need_ - stage_.size(), n - pos);
        stage_.append(reinterpret_cast<const char*>(p + pos), k);
        pos += k;
        if (stage_.size() < need_) return true;
        Raw(reinterpret_cast<const uint8_t*>(stage_.data()), stage_.size());
        Meta();
        stage_.clear();
        state_ = State::kHeader;
        break;
      }
      case State::kBody: {
        size_t k = static_cast<size_t>(std::min<int64_t>(remaining_, n - pos));
        if (!BodyBytes(p + pos, k)) return false;
        pos += k;
        remaining_ -= k;
        if (remaining_ == 0 && pad_ > 0) state_ = State::kPad;
        else if (remaining_ == 0 && !EndBody()) return false;
        break;
      }
      case State::kPad: {
        size_t k = static_cast<size_t>(std::min<int64_t>(pad_, n - pos));
        Raw(p + pos, k);
        pos += k;
        pad_ -= k;
        if (pad_ == 0 && !EndBody()) return false;
        break;
      }
      case State::kTrailer:
        // Everything after the end marker (the second zero block, tar padding) belongs to the stream.
        Raw(p + pos, n - pos);
        pos = n;
        break;
    }
  }
  return true;
}

bool TarApply::Header(const uint8_t* block, const uint8_t* p, size_t n, size_t* pos) {
  Raw(block, kTarBlock);
  if (IsZeroBlock(block)) {
    state_ = State::kTrailer;
    return true;
  }
  RawHeader h = DecodeBlock(block);
  if (h.flag == 'x' || h.flag == 'g' || h.flag == 'L' || h.flag == 'K') {
    if (h.size > kMaxMetaRecord)
      throw TarFormat(std::string(MetaRecordName(h.flag)) + " record too large (" + std::to_string(h.size) +
                      " bytes)");
    metaHeader_ = std::move(h);
    need_ = static_cast<size_t>(metaHeader_.size + Padding(metaHeader_.size));
    stage_.clear();
    state_ = State::kMeta;
    if (need_ == 0) {
      Meta();
      state_ = State::kHeader;
    }
    return true;
  }
  EntryHeader e = MergeHeader(h, pax_, longName_.get(), longLink_.get());
  pax_.clear();
  longName_.reset();
  longLink_.reset();
  // Header-only types have no body whatever size they claim (as Go's archive/tar reads them).
  if (e.type != EntryType::kFile) e.size = 0;
  RecordFile(e.name, e.size);
  return Entry(e, p, n, pos);
}

void TarApply::Meta() {
  const uint8_t* b = reinterpret_cast<const uint8_t*>(stage_.data());
  const size_t size = static_cast<size_t>(metaHeader_.size);
  switch (metaHeader_.flag) {
    case 'x':
      DecodePax(b, size, pax_);
      break;
    case 'L':
    case 'K': {
      const void* nul = memchr(b, 0, size);
      auto s = std::make_unique<std::string>(reinterpret_cast<const char*>(b),
                                             nul ? static_cast<const uint8_t*>(nul) - b : size);
      (metaHeader_.flag == 'L' ? longName_ : longLink_) = std::move(s);
      break;
    }
    default:  // 'g': global PAX headers are ignored
      break;
  }
}

// Applier.entry in src/diff/apply.ts: what one entry means.
bool TarApply::Entry(EntryHeader& h, const uint8_t* p, size_t n, size_t* pos) {
  size_ += h.size;
  cur_ = std::move(h);
  EntryHeader& e = cur_;
  remaining_ = e.size;
  pad_ = Padding(e.size);
  body_ = Body::kSkip;
  curRel_.clear();
  handle_ = 0;
  bool ok = true;

  const std::string rel = CleanEntryPath(e.name);
  auto [parent, base] = Split(rel);
  if (StartsWith(rel, kWhiteoutMetaPrefix)) {
    if (StartsWith(rel, std::string(kWhiteoutLinkDir) + "/") && e.type == EntryType::kFile) {
      StashOpen(rel);
    } else if (rel == kWhiteoutOpaque) {
      ok = Whiteout(parent, base, e);
    }
  } else if (StartsWith(base, kWhiteoutPrefix)) {
    ok = Whiteout(parent, base, e);
  } else if (rel.empty()) {
    if (e.type != EntryType::kDir)
      throw Breakout("the layer root is not a directory " + Quoted(e.name));
    auto op = Op(kOpEntry, e, rel);
    op->kind = kKindRoot;
    ok = Emit(std::move(op), nullptr, 0);
    PushDir(rel, e);
  } else {
    if (e.type == EntryType::kSymlink) AssertSafeSymlink(rel, e.linkname);
    const bool independent = Independent(rel, e.type == EntryType::kDir) && e.type != EntryType::kLink;
    const uint32_t code = independent ? (kOpEntry | kOpParallel) : kOpEntry;
    switch (e.type) {
      case EntryType::kFile:
        if (e.size > kSmallBody) {
          // Streamed: create now, write as the body arrives, metadata at the end.
          handle_ = nextHandle_++;
          auto op = std::make_unique<ApplyOpRec>();
          op->op = kOpBegin;
          op->handle = handle_;
          op->parent = parent;
          op->base = base;
          op->name = e.name;
          ok = Emit(std::move(op), nullptr, 0);
          body_ = Body::kStream;
          curRel_ = rel;
        } else if (static_cast<int64_t>(n - *pos) >= e.size + pad_) {
          auto op = Op(code, e, rel);
          op->kind = kKindFile;
          ok = Emit(std::move(op), p + *pos, static_cast<size_t>(e.size));
          *pos += static_cast<size_t>(e.size);
          Raw(p + *pos, static_cast<size_t>(pad_));
          *pos += static_cast<size_t>(pad_);
          remaining_ = pad_ = 0;
        } else {
          gather_.clear();
          gather_.reserve(static_cast<size_t>(e.size));
          body_ = Body::kGather;
          curRel_ = rel;
          gatherParallel_ = independent;
        }
        break;
      case EntryType::kSymlink: {
        auto op = Op(code, e, rel);
        op->kind = kKindSymlink;
        op->link1 = e.linkname;
        ok = Emit(std::move(op), nullptr, 0);
        break;
      }
      case EntryType::kLink: {
        const std::string target = CleanEntryPath(e.linkname);
        if (target.empty()) throw Breakout("hardlink to the root " + Quoted(e.name));
        auto stash = StartsWith(target, std::string(kWhiteoutLinkDir) + "/") ? plnk_.find(target) : plnk_.end();
        if (stash != plnk_.end()) {
          // AUFS hardlink store: the first name made from the stashed body holds its inode,
          // later names link to it (native ApplyFs::Plnk); metadata comes from the stash entry.
          std::string name = e.name;
          e = stash->second;
          e.name = name;
          auto op = Op(kOpEntry, e, rel);
          op->kind = kKindPlnk;
          op->link1 = target;
          op->link2 = plnkDir_ + "/" + Split(target).second;
          ok = Emit(std::move(op), nullptr, 0);
          break;
        }
        auto op = Op(kOpEntry, e, rel);
        op->kind = kKindLink;
        std::tie(op->link1, op->link2) = Split(target);
        op->keep.push_back(e.linkname);  // for the ERR_LINK_TARGET message
        ok = Emit(std::move(op), nullptr, 0);
        break;
      }
      default: {
        auto op = Op(code, e, rel);
        op->kind = Kind(e.type);
        op->major = static_cast<uint32_t>(e.devmajor);
        op->minor = static_cast<uint32_t>(e.devminor);
        ok = Emit(std::move(op), nullptr, 0);
      }
    }
    if (e.type == EntryType::kDir) PushDir(rel, e);
    unpacked_.insert(rel);
  }
  if (!ok) return false;
  if (remaining_ > 0) state_ = State::kBody;
  else if (pad_ > 0) state_ = State::kPad;
  else return EndBody();
  return true;
}

bool TarApply::BodyBytes(const uint8_t* p, size_t k) {
  switch (body_) {
    case Body::kSkip:
      return true;
    case Body::kGather:
      gather_.append(reinterpret_cast<const char*>(p), k);
      return true;
    case Body::kStash:
      for (size_t done = 0; done < k;) {
        ssize_t w = write(stashFd_, p + done, k - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) throw TarError("ERR_PLNK_STASH", std::string("Cannot stash the AUFS hardlink body: ") +
                                                        strerror(errno) + " " + Quoted(cur_.name));
        done += static_cast<size_t>(w);
      }
      return true;
    case Body::kStream: {
      auto op = std::make_unique<ApplyOpRec>();
      op->op = kOpWrite;
      op->handle = handle_;
      op->name = cur_.name;
      return Emit(std::move(op), p, k);
    }
  }
  return true;
}

// The entry's body and padding are read: what waited for them is done now
// (as in the oracle engine of the tests, an entry counts once its padding is there).
bool TarApply::EndBody() {
  state_ = State::kHeader;
  Body body = body_;
  body_ = Body::kSkip;
  switch (body) {
    case Body::kSkip:
      return true;
    case Body::kGather: {
      owned_.push_back(std::move(gather_));
      gather_.clear();
      const std::string& b = owned_.back();
      auto op = Op(gatherParallel_ ? (kOpEntry | kOpParallel) : kOpEntry, cur_, curRel_);
      op->kind = kKindFile;
      return Emit(std::move(op), reinterpret_cast<const uint8_t*>(b.data()), b.size());
    }
    case Body::kStash:
      close(stashFd_);
      stashFd_ = -1;
      plnk_[curRel_] = cur_;
      curRel_.clear();
      return true;
    case Body::kStream: {
      auto op = Op(kOpEnd, cur_, curRel_);
      op->handle = handle_;
      return Emit(std::move(op), nullptr, 0);
    }
  }
  return true;
}

bool TarApply::Whiteout(const std::string& parent, const std::string& base, const EntryHeader& h) {
  auto op = std::make_unique<ApplyOpRec>();
  op->name = h.name;
  op->parent = parent;
  if (base == kWhiteoutOpaque) {
    if (opts_.overlayWhiteouts) {
      op->op = kOpOpaqueOverlay;
    } else {
      op->op = kOpOpaqueAufs;
      const std::string prefix = parent + "/";
      for (auto& u : unpacked_)
        if (parent.empty() || StartsWith(u, prefix)) op->keep.push_back(u);
    }
    return Emit(std::move(op), nullptr, 0);
  }
  const std::string victim = base.substr(strlen(kWhiteoutPrefix));
  if (StartsWith(base, kWhiteoutMetaPrefix)) return true;  // other AUFS metadata below the root: skipped
  if (victim.empty() || victim == "." || victim == "..") throw Breakout("invalid whiteout " + Quoted(h.name));
  op->base = victim;
  if (opts_.overlayWhiteouts) {
    op->op = kOpWhiteoutOverlay;
    op->uid = MapId(h.uid, opts_.uidMap, "uid");
    op->gid = MapId(h.gid, opts_.gidMap, "gid");
    const std::string victimRel = parent.empty() ? victim : parent + "/" + victim;
    unpacked_.insert(victimRel);
    Independent(victimRel, false);
  } else {
    op->op = kOpWhiteoutAufs;
  }
  return Emit(std::move(op), nullptr, 0);
}

// In an initially empty root, a name not made or implied before, below no
// name made as a non-directory and implying no new directory, commutes with
// every other such op. (A directory the op would make on its way inherits a
// setgid parent's group and bit: it must wait until the parent's own entry
// has run.)
bool TarApply::Independent(const std::string& rel, bool isDir) {
  if (!opts_.parallel) return false;
  bool ok = known_.find(rel) == known_.end();
  for (size_t i = rel.rfind('/'); i != std::string::npos && i > 0; i = rel.rfind('/', i - 1)) {
    std::string ancestor = rel.substr(0, i);
    if (nonDirs_.count(ancestor)) ok = false;
    if (!known_.insert(std::move(ancestor)).second) continue;
    ok = false;  // a new implied directory
  }
  known_.insert(rel);
  if (isDir) nonDirs_.erase(rel);
  else nonDirs_.insert(rel);
  return ok;
}

// Directory times are restored at the end, with the atime rule of SetMeta.
void TarApply::PushDir(const std::string& rel, const EntryHeader& h) {
  dirs_.push_back({rel, h.name, h.hasAtime && h.atime.tv_sec >= h.mtime.tv_sec ? h.atime : h.mtime, h.mtime});
}

std::unique_ptr<ApplyOpRec> TarApply::Op(uint32_t code, const EntryHeader& h, const std::string& rel) {
  auto op = std::make_unique<ApplyOpRec>();
  op->op = code;
  std::tie(op->parent, op->base) = Split(rel);
  SetMeta(*op, h);
  return op;
}

// Ownership (id-mapped), mode, xattrs and times of a header.
void TarApply::SetMeta(ApplyOpRec& op, const EntryHeader& h) {
  op.name = h.name;
  op.uid = MapId(h.uid, opts_.uidMap, "uid");
  op.gid = MapId(h.gid, opts_.gidMap, "gid");
  op.mode = h.mode & 07777;
  for (auto& x : h.xattrs) {
    if (KernelMetadataXattr(x.first)) Dropped(h.name, x.first);
    else op.xattrs.push_back({x.first, x.second});
  }
  op.times[0] = h.hasAtime && h.atime.tv_sec >= h.mtime.tv_sec ? h.atime : h.mtime;
  op.times[1] = h.mtime;
}

void TarApply::Dropped(const std::string& name, const std::string& key) {
  if (warnings_.size() < kMaxWarnings)
    warnings_.push_back("dropped xattr " + key + " on " + Quoted(name) + ": the kernel would read it as its own metadata");
  else
    droppedMore_++;
}

uint64_t TarApply::TakeWarnings(std::vector<std::string>& out) {
  for (auto& w : warnings_) out.push_back(std::move(w));
  warnings_.clear();
  uint64_t more = droppedMore_;
  droppedMore_ = 0;
  return more;
}

bool TarApply::Emit(std::unique_ptr<ApplyOpRec> op, const uint8_t* body, size_t len) {
  const struct iovec* bufs = nullptr;
  if (len > 0) {
    iovs_.push_back({const_cast<uint8_t*>(body), len});
    bufs = &iovs_.back();
    op->nbufs = 1;
  }
  return sink_->Run(std::move(op), bufs);
}

void TarApply::StashOpen(const std::string& rel) {
  if (plnkDir_.empty()) {
    std::string tmpl = TempDir() + "/strata-plnk-XXXXXX";
    if (!mkdtemp(tmpl.data()))
      throw TarError("ERR_PLNK_STASH", std::string("Cannot stash the AUFS hardlink body: ") + strerror(errno) + " " +
                                           Quoted(tmpl));
    plnkDir_ = tmpl;
  }
  const std::string file = plnkDir_ + "/" + Split(rel).second;
  stashFd_ = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (stashFd_ < 0)
    throw TarError("ERR_PLNK_STASH", std::string("Cannot stash the AUFS hardlink body: ") + strerror(errno) + " " +
                                         Quoted(file));
  body_ = Body::kStash;
  curRel_ = rel;
}

bool TarApply::Finish() {
  switch (state_) {
    case State::kHeader:
      if (!stage_.empty()) throw TarFormat("unexpected end of archive in header");
      break;  // a missing end-of-archive marker is tolerated
    case State::kMeta:
      throw TarFormat(std::string("unexpected end of archive in ") + MetaRecordName(metaHeader_.flag));
    case State::kBody:
      throw TarFormat("unexpected end of archive in body of " + Quoted(cur_.name));
    case State::kPad:
      throw TarFormat("unexpected end of archive in padding of " + Quoted(cur_.name));
    case State::kTrailer:
      break;
  }
  FlushRaw();
  // Directory times change as children are created; set them last, as Docker does.
  for (auto& d : dirs_) {
    auto op = std::make_unique<ApplyOpRec>();
    op->op = kOpDirTime;
    op->kind = d.rel.empty() ? static_cast<uint32_t>(kKindRoot) : 0u;
    op->name = d.name;
    std::tie(op->parent, op->base) = Split(d.rel);
    op->times[0] = d.atime;
    op->times[1] = d.mtime;
    if (!Emit(std::move(op), nullptr, 0)) return false;
  }
  return true;
}

void TarApply::RecordFile(const std::string& name, int64_t size) {
  if (!opts_.record || size == 0) return;
  FlushRaw();
  records_ += '\x02';
  Varint(records_, static_cast<uint64_t>(size));
  Varint(records_, name.size());
  records_ += name;
  recordedFiles_++;
}

void TarApply::FlushRaw() {
  if (pendingRaw_.empty()) return;
  records_ += '\x01';
  Varint(records_, pendingRaw_.size());
  records_ += pendingRaw_;
  pendingRaw_.clear();
}

std::string TarApply::TakeRecords(uint32_t* files) {
  *files = recordedFiles_;
  recordedFiles_ = 0;
  std::string out;
  out.swap(records_);
  return out;
}

}  // namespace strata
