#include "scan/export_entry.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "sys/dir_at.h"

namespace strata {

int OpenDirInRoot(int root, const std::string& rel) {
  struct open_how how = {};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long r;
  do r = syscall(SYS_openat2, root, rel.empty() ? "." : rel.c_str(), &how, sizeof(how));
  while (r < 0 && (errno == EAGAIN || errno == EINTR));  // EAGAIN: a rename raced the lookup
  return static_cast<int>(r);
}

bool ListSorted(int dirfd, const std::string& rel, std::vector<ExportEntry>& out, SysError& e) {
  size_t first = out.size();
  if (!ForEachName(dirfd, rel, [&](const struct dirent& d) { out.emplace_back().name = d.d_name; }, e)) return false;
  // Byte order, as Docker's walk (std::string compares bytes as unsigned).
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
            [](const ExportEntry& a, const ExportEntry& b) { return a.name < b.name; });
  return true;
}

namespace {

// Reads `size` bytes of regular file `base` into `data`; false when it could
// not be opened (vanished or replaced by a symlink), and then adds nothing.
bool ReadSmall(int dirfd, const std::string& base, size_t size, std::vector<char>& data) {
  int fd = openat(dirfd, base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  size_t start = data.size();
  data.resize(start + size);
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, data.data() + start + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  // A file that shrank meanwhile is zero-filled to the size in its header, as the tar writer does.
  std::fill(data.begin() + static_cast<std::ptrdiff_t>(start + got), data.end(), 0);
  return true;
}

}  // namespace

void DescribeEntry(int dirfd, const std::string& base, ExportEntry& ent, double* f, const ExportOptions& o,
                   std::vector<char>& data, size_t& budget) {
  struct stat st;
  f[0] = NAN;  // vanished unless the lstat below succeeds
  f[11] = -1;
  if (fstatat(dirfd, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  PackStat(st, f);
  f[10] = static_cast<double>(st.st_dev);
  if (S_ISLNK(st.st_mode)) {
    char buf[PATH_MAX];
    ssize_t n = readlinkat(dirfd, base.c_str(), buf, sizeof(buf));
    if (n >= 0) ent.link.assign(buf, static_cast<size_t>(n));
    return;  // capabilities live on files only
  }
  char buf[256];
  ssize_t n = GetXattrAt(dirfd, base, "security.capability", buf, sizeof(buf));
  if (n >= 0) {
    ent.cap.assign(buf, buf + n);
    ent.hasCap = true;
  }
  if (o.opaque && S_ISDIR(st.st_mode)) {
    n = GetXattrAt(dirfd, base, "trusted.overlay.opaque", buf, sizeof(buf));
    ent.opaque = n == 1 && buf[0] == 'y';
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (S_ISREG(st.st_mode) && size > 0 && size <= o.inlineMax && size <= budget) {
    size_t offset = data.size();
    if (ReadSmall(dirfd, base, size, data)) {
      f[11] = static_cast<double>(offset);
      budget -= size;
    }
  }
}

Napi::Object ExportBatchToJs(Napi::Env env, ExportBatch& batch) {
  Napi::Object out = Napi::Object::New(env);
  size_t count = batch.entries.size();
  out.Set("missing", Napi::Boolean::New(env, batch.missing));
  out.Set("done", Napi::Boolean::New(env, batch.done));
  Napi::Array names = Napi::Array::New(env, count);
  Napi::Array caps = Napi::Array::New(env);
  Napi::Array links = Napi::Array::New(env);
  Napi::Array opaque = Napi::Array::New(env);
  for (size_t i = 0; i < count; i++) {
    const ExportEntry& ent = batch.entries[i];
    names.Set(i, Napi::String::New(env, ent.name));
    if (ent.hasCap) caps.Set(i, Napi::Buffer<char>::Copy(env, ent.cap.data(), ent.cap.size()));
    if (!ent.link.empty()) links.Set(i, Napi::String::New(env, ent.link));
    if (ent.opaque) opaque.Set(i, Napi::Boolean::New(env, true));
  }
  out.Set("names", names);
  out.Set("caps", caps);
  out.Set("links", links);
  out.Set("opaque", opaque);
  auto stats = Napi::Float64Array::New(env, batch.stats.size());
  std::copy(batch.stats.begin(), batch.stats.end(), stats.Data());
  out.Set("stats", stats);
  if (batch.data->empty()) {
    out.Set("data", Napi::Buffer<char>::New(env, 0));
  } else {
    // Hand the file contents over without a copy; the Buffer owns the vector.
    std::vector<char>* data = batch.data.release();
    out.Set("data", Napi::Buffer<char>::New(env, data->data(), data->size(),
                                            [](Napi::Env, char*, std::vector<char>* v) { delete v; }, data));
  }
  return out;
}

}  // namespace strata
