// openat2 and the *at() operations an extractor needs relative to a root
// directory fd. The caller resolves a parent directory with openat2
// (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) and then acts on one name inside
// it, so no path from a tar is ever walked by the kernel outside the root.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <limits.h>

#include <memory>

#include "addon/common.h"

namespace strata {
namespace {

Napi::Value Undefined(Napi::Env env) { return env.Undefined(); }

Napi::Value Openat2(const Napi::CallbackInfo& info) {
  int dirfd = static_cast<int>(ArgInt(info, 0, "dirfd"));
  std::string path = ArgString(info, 1, "path");
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(ArgInt(info, 2, "flags")) | O_CLOEXEC;
  how.mode = static_cast<uint64_t>(ArgOptInt(info, 3, "mode", 0));
  how.resolve = static_cast<uint64_t>(ArgOptInt(info, 4, "resolve", 0));
  auto fd = std::make_shared<int>(-1);
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        long r;
        do r = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how));
        while (r < 0 && (errno == EAGAIN || errno == EINTR));  // EAGAIN: rename race with RESOLVE_IN_ROOT
        if (r < 0) return Fail(e, "openat2", path);
        *fd = static_cast<int>(r);
        return true;
      },
      [=](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *fd); });
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(ArgInt(info, 0, "fd"));
  return RunAsync(
      info.Env(), [=](SysError& e) { return close(fd) == 0 || Fail(e, "close", ""); }, Undefined);
}

Napi::Value Mkdirat(const Napi::CallbackInfo& info) {
  int dirfd = static_cast<int>(ArgInt(info, 0, "dirfd"));
  std::string path = ArgString(info, 1, "path");
  mode_t mode = static_cast<mode_t>(ArgInt(info, 2, "mode"));
  return RunAsync(
      info.Env(), [=](SysError& e) { return mkdirat(dirfd, path.c_str(), mode) == 0 || Fail(e, "mkdirat", path); },
      Undefined);
}

Napi::Value Symlinkat(const Napi::CallbackInfo& info) {
  std::string target = ArgString(info, 0, "target");
  int dirfd = static_cast<int>(ArgInt(info, 1, "dirfd"));
  std::string path = ArgString(info, 2, "path");
  return RunAsync(
      info.Env(),
      [=](SysError& e) { return symlinkat(target.c_str(), dirfd, path.c_str()) == 0 || Fail(e, "symlinkat", path); },
      Undefined);
}

Napi::Value Unlinkat(const Napi::CallbackInfo& info) {
  int dirfd = static_cast<int>(ArgInt(info, 0, "dirfd"));
  std::string path = ArgString(info, 1, "path");
  int flags = static_cast<int>(ArgOptInt(info, 2, "flags", 0));
  return RunAsync(
      info.Env(), [=](SysError& e) { return unlinkat(dirfd, path.c_str(), flags) == 0 || Fail(e, "unlinkat", path); },
      Undefined);
}

Napi::Value Renameat2(const Napi::CallbackInfo& info) {
  int olddir = static_cast<int>(ArgInt(info, 0, "olddirfd"));
  std::string oldpath = ArgString(info, 1, "oldpath");
  int newdir = static_cast<int>(ArgInt(info, 2, "newdirfd"));
  std::string newpath = ArgString(info, 3, "newpath");
  unsigned flags = static_cast<unsigned>(ArgOptInt(info, 4, "flags", 0));
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        return renameat2(olddir, oldpath.c_str(), newdir, newpath.c_str(), flags) == 0 || Fail(e, "renameat2", newpath);
      },
      Undefined);
}

Napi::Value Fchownat(const Napi::CallbackInfo& info) {
  int dirfd = static_cast<int>(ArgInt(info, 0, "dirfd"));
  std::string path = ArgString(info, 1, "path");
  uid_t uid = static_cast<uid_t>(ArgInt(info, 2, "uid"));
  gid_t gid = static_cast<gid_t>(ArgInt(info, 3, "gid"));
  int flags = static_cast<int>(ArgOptInt(info, 4, "flags", 0));
  return RunAsync(
      info.Env(),
      [=](SysError& e) { return fchownat(dirfd, path.c_str(), uid, gid, flags) == 0 || Fail(e, "fchownat", path); },
      Undefined);
}

Napi::Value StatToObject(Napi::Env env, const struct stat& st) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dev", Napi::Number::New(env, static_cast<double>(st.st_dev)));
  o.Set("ino", Napi::Number::New(env, static_cast<double>(st.st_ino)));
  o.Set("mode", Napi::Number::New(env, st.st_mode));
  o.Set("nlink", Napi::Number::New(env, static_cast<double>(st.st_nlink)));
  o.Set("uid", Napi::Number::New(env, st.st_uid));
  o.Set("gid", Napi::Number::New(env, st.st_gid));
  o.Set("rdevMajor", Napi::Number::New(env, major(st.st_rdev)));
  o.Set("rdevMinor", Napi::Number::New(env, minor(st.st_rdev)));
  o.Set("size", Napi::Number::New(env, static_cast<double>(st.st_size)));
  o.Set("mtimeSec", Napi::Number::New(env, static_cast<double>(st.st_mtim.tv_sec)));
  o.Set("mtimeNsec", Napi::Number::New(env, static_cast<double>(st.st_mtim.tv_nsec)));
  o.Set("atimeSec", Napi::Number::New(env, static_cast<double>(st.st_atim.tv_sec)));
  o.Set("atimeNsec", Napi::Number::New(env, static_cast<double>(st.st_atim.tv_nsec)));
  return o;
}

Napi::Value Fstatat(const Napi::CallbackInfo& info) {
  int dirfd = static_cast<int>(ArgInt(info, 0, "dirfd"));
  std::string path = ArgString(info, 1, "path");
  int flags = static_cast<int>(ArgOptInt(info, 2, "flags", 0));
  auto st = std::make_shared<struct stat>();
  return RunAsync(
      info.Env(),
      [=](SysError& e) { return fstatat(dirfd, path.c_str(), st.get(), flags) == 0 || Fail(e, "fstatat", path); },
      [=](Napi::Env env) { return StatToObject(env, *st); });
}

Napi::Value Readlinkat(const Napi::CallbackInfo& info) {
  int dirfd = static_cast<int>(ArgInt(info, 0, "dirfd"));
  std::string path = ArgString(info, 1, "path");
  auto out = std::make_shared<std::string>();
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        char buf[PATH_MAX + 1];
        ssize_t n = readlinkat(dirfd, path.c_str(), buf, PATH_MAX);
        if (n < 0) return Fail(e, "readlinkat", path);
        out->assign(buf, static_cast<size_t>(n));
        return true;
      },
      [=](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *out); });
}

}  // namespace

void InitAt(Napi::Env env, Napi::Object exports) {
  exports.Set("openat2", Napi::Function::New(env, Openat2));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("mkdirat", Napi::Function::New(env, Mkdirat));
  exports.Set("symlinkat", Napi::Function::New(env, Symlinkat));
  exports.Set("unlinkat", Napi::Function::New(env, Unlinkat));
  exports.Set("renameat2", Napi::Function::New(env, Renameat2));
  exports.Set("fchownat", Napi::Function::New(env, Fchownat));
  exports.Set("fstatat", Napi::Function::New(env, Fstatat));
  exports.Set("readlinkat", Napi::Function::New(env, Readlinkat));
}

}  // namespace strata
