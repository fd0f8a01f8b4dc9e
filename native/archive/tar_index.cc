// tarIndex(path): the members of a tar file on disk, for random access to
// them (src/archive/tar-members.ts). One pass over the headers with pread;
// bodies are skipped by offset, never read. Headers are decoded by the same
// decoder the applier uses (tar_header.h): PAX and GNU records merged,
// header-only types without a body whatever size they claim.
//
//   tarIndex(path, maxMembers) -> Promise<Array<{ name, type: "file" | "link", linkname, offset, size }>>
//
// Only regular files and hardlinks are listed; other entries are skipped,
// unknown types included. More than `maxMembers` of them is ERR_BAD_ARCHIVE
// (a header flood must not grow the list without bound). A missing end
// marker is tolerated; a header or body that runs past the end of the file
// is ERR_ARCHIVE_TRUNCATED.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include "addon/common.h"
#include "archive/tar_header.h"

namespace strata {
namespace {

constexpr int64_t kMaxMetaRecord = 16 << 20;  // as in the applier

struct Member {
  std::string name, linkname;
  bool link = false;
  int64_t offset = 0, size = 0;
};

TarError Truncated(const std::string& why, const std::string& file) {
  return TarError("ERR_ARCHIVE_TRUNCATED", "Cannot read the archive: " + why + " \"" + file + "\"");
}

int64_t Padding(int64_t size) { return (kTarBlock - size % kTarBlock) % kTarBlock; }

bool ReadAt(int fd, void* buf, size_t n, int64_t at, SysError& e, const std::string& file) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, static_cast<char*>(buf) + done, n - done, at + static_cast<int64_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Fail(e, "pread", file);
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  if (done == n) return true;
  throw Truncated("unexpected end of archive", file);
}

bool KnownType(char flag) { return (flag >= '0' && flag <= '7') || flag == '\0'; }

bool Scan(int fd, const std::string& file, size_t maxMembers, std::vector<Member>& out, SysError& e) {
  struct stat st;
  if (fstat(fd, &st) != 0) return Fail(e, "fstat", file);
  const int64_t fileSize = st.st_size;
  uint8_t block[kTarBlock];
  PaxRecords pax;
  std::unique_ptr<std::string> longName, longLink;
  int64_t off = 0;
  for (;;) {
    if (off + static_cast<int64_t>(kTarBlock) > fileSize) {
      if (off == fileSize && off > 0) break;  // a missing end marker is tolerated, as the applier does
      throw Truncated("unexpected end of archive", file);
    }
    if (!ReadAt(fd, block, kTarBlock, off, e, file)) return false;
    off += kTarBlock;
    if (IsZeroBlock(block)) break;
    RawHeader h = DecodeBlock(block);
    if (h.flag == 'x' || h.flag == 'g' || h.flag == 'L' || h.flag == 'K') {
      if (h.size > kMaxMetaRecord)
        throw TarFormat("extension record too large (" + std::to_string(h.size) + " bytes)");
      if (off + h.size > fileSize) throw Truncated("extension record of \"" + h.name + "\" is cut short", file);
      std::string rec(static_cast<size_t>(h.size), '\0');
      if (!ReadAt(fd, rec.data(), rec.size(), off, e, file)) return false;
      const uint8_t* b = reinterpret_cast<const uint8_t*>(rec.data());
      if (h.flag == 'x') {
        DecodePax(b, rec.size(), pax);
      } else if (h.flag != 'g') {
        const void* nul = memchr(b, 0, rec.size());
        auto s = std::make_unique<std::string>(rec.data(), nul ? static_cast<const uint8_t*>(nul) - b : rec.size());
        (h.flag == 'L' ? longName : longLink) = std::move(s);
      }
      off += h.size + Padding(h.size);
      continue;
    }
    int64_t size = 0;
    if (KnownType(h.flag)) {
      EntryHeader m = MergeHeader(h, pax, longName.get(), longLink.get());
      // Header-only types have no body whatever size they claim.
      size = m.type == EntryType::kFile ? m.size : 0;
      if (m.type == EntryType::kFile || m.type == EntryType::kLink) {
        if (out.size() >= maxMembers)
          throw TarError("ERR_BAD_ARCHIVE", "Cannot read the archive: more than " + std::to_string(maxMembers) +
                                                " members \"" + file + "\"");
        out.push_back({m.name, m.linkname, m.type == EntryType::kLink, off, size});
      }
    } else {
      size = h.size;  // an entry strata does not read: its body is skipped as declared
    }
    pax.clear();
    longName.reset();
    longLink.reset();
    if (off + size > fileSize) throw Truncated("member \"" + h.name + "\" is cut short", file);
    off += size + Padding(size);
  }
  return true;
}

Napi::Value TarIndex(const Napi::CallbackInfo& info) {
  std::string file = ArgString(info, 0, "path");
  int64_t max = ArgInt(info, 1, "maxMembers");
  if (max < 0) throw Napi::TypeError::New(info.Env(), "Argument 1 (maxMembers) must not be negative");
  const size_t maxMembers = static_cast<size_t>(max);
  auto members = std::make_shared<std::vector<Member>>();
  return RunAsync(
      info.Env(),
      [file, maxMembers, members](SysError& e) {
        int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return Fail(e, "open", file);
        bool ok = false;
        try {
          ok = Scan(fd, file, maxMembers, *members, e);
        } catch (const TarError& ex) {
          e.code = ex.code;
          e.message = ex.what();
        }
        close(fd);
        return ok;
      },
      [members](Napi::Env env) -> Napi::Value {
        Napi::Array arr = Napi::Array::New(env, members->size());
        for (size_t i = 0; i < members->size(); i++) {
          const Member& m = (*members)[i];
          Napi::Object o = Napi::Object::New(env);
          o.Set("name", Napi::String::New(env, m.name));
          o.Set("type", Napi::String::New(env, m.link ? "link" : "file"));
          o.Set("linkname", Napi::String::New(env, m.linkname));
          o.Set("offset", Napi::Number::New(env, static_cast<double>(m.offset)));
          o.Set("size", Napi::Number::New(env, static_cast<double>(m.size)));
          arr.Set(i, o);
        }
        return arr;
      });
}

}  // namespace

void InitTarIndex(Napi::Env env, Napi::Object exports) { exports.Set("tarIndex", Napi::Function::New(env, TarIndex)); }

}  // namespace strata
