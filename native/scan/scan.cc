// scanPair: one step of Docker's parallel ChangesDirs walk, done in one trip
// to the thread pool. Reads the names (with inode numbers) of a directory
// in the new tree and its counterpart in the old tree, sorts them by bytes,
// drops names whose inode is the same in both (same device), and lstats +
// reads security.capability for what is left.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <sys/syscall.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <vector>

#include "addon/common.h"
#include "sys/dir_at.h"

namespace strata {
namespace {

struct NameIno {
  std::string name;
  ino_t ino;
};

// Fields per entry in the packed stat arrays.
constexpr int kFields = kStatFields;

bool ReadNames(int dirfd, const std::string& path, std::vector<NameIno>& out, SysError& e) {
  if (!ForEachName(dirfd, path, [&](const struct dirent& d) { out.push_back({d.d_name, d.d_ino}); }, e)) return false;
  std::sort(out.begin(), out.end(), [](const NameIno& a, const NameIno& b) { return a.name < b.name; });
  return true;
}

struct Side {
  std::vector<double> stats;  // kFields per entry; NaN mode = absent
  std::vector<std::vector<char>> caps;
  std::vector<bool> hasCap;
};

void StatInto(int dirfd, const std::string& name, Side& side, size_t i) {
  struct stat st;
  double* f = &side.stats[i * kFields];
  if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;  // vanished: absent
  PackStat(st, f);
  if (S_ISLNK(st.st_mode)) return;  // capabilities live on files only
  char buf[256];
  ssize_t n = GetXattrAt(dirfd, name, "security.capability", buf, sizeof(buf));
  if (n >= 0) {
    side.caps[i].assign(buf, buf + n);
    side.hasCap[i] = true;
  }
}

struct Result {
  std::vector<std::string> names;
  Side side[2];
};

// scanPair(newDir: string|null, oldDir: string|null) -> {names, newStats, oldStats, newCaps, oldCaps}
Napi::Value ScanPair(const Napi::CallbackInfo& info) {
  bool has[2];
  std::string dir[2];
  dir[0] = ArgOptString(info, 0, "newDir", &has[0]);
  dir[1] = ArgOptString(info, 1, "oldDir", &has[1]);
  auto res = std::make_shared<Result>();
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        int fds[2] = {-1, -1};
        struct stat dst[2];
        std::vector<NameIno> names[2];
        bool ok = true;
        for (int s = 0; s < 2 && ok; s++) {
          if (!has[s]) continue;
          fds[s] = open(dir[s].c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
          if (fds[s] < 0) {
            ok = Fail(e, "open", dir[s]);
            break;
          }
          if (fstat(fds[s], &dst[s]) != 0) ok = Fail(e, "fstat", dir[s]);
          else ok = ReadNames(fds[s], dir[s], names[s], e);
        }
        if (ok) {
          bool sameDevice = has[0] && has[1] && dst[0].st_dev == dst[1].st_dev;
          size_t a = 0, b = 0;
          auto& n0 = names[0];
          auto& n1 = names[1];
          while (a < n0.size() && b < n1.size()) {
            int c = n0[a].name.compare(n1[b].name);
            if (c < 0) res->names.push_back(n0[a++].name);
            else if (c > 0) res->names.push_back(n1[b++].name);
            else {
              if (n0[a].ino != n1[b].ino || !sameDevice) res->names.push_back(n0[a].name);
              a++;
              b++;
            }
          }
          while (a < n0.size()) res->names.push_back(n0[a++].name);
          while (b < n1.size()) res->names.push_back(n1[b++].name);
          for (int s = 0; s < 2; s++) {
            Side& side = res->side[s];
            side.stats.assign(res->names.size() * kFields, std::numeric_limits<double>::quiet_NaN());
            side.caps.resize(res->names.size());
            side.hasCap.assign(res->names.size(), false);
            if (!has[s]) continue;
            for (size_t i = 0; i < res->names.size(); i++) StatInto(fds[s], res->names[i], side, i);
          }
        }
        for (int s = 0; s < 2; s++)
          if (fds[s] >= 0) close(fds[s]);
        return ok;
      },
      [=](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        Napi::Array names = Napi::Array::New(env, res->names.size());
        for (size_t i = 0; i < res->names.size(); i++) names.Set(i, Napi::String::New(env, res->names[i]));
        o.Set("names", names);
        const char* statKey[2] = {"newStats", "oldStats"};
        const char* capKey[2] = {"newCaps", "oldCaps"};
        for (int s = 0; s < 2; s++) {
          const Side& side = res->side[s];
          auto arr = Napi::Float64Array::New(env, side.stats.size());
          std::copy(side.stats.begin(), side.stats.end(), arr.Data());
          o.Set(statKey[s], arr);
          Napi::Array caps = Napi::Array::New(env);
          for (size_t i = 0; i < side.hasCap.size(); i++)
            if (side.hasCap[i]) caps.Set(i, Napi::Buffer<char>::Copy(env, side.caps[i].data(), side.caps[i].size()));
          o.Set(capKey[s], caps);
        }
        return o;
      });
}

}  // namespace

void InitScan(Napi::Env env, Napi::Object exports) {
  exports.Set("scanPair", Napi::Function::New(env, ScanPair));
}

}  // namespace strata
