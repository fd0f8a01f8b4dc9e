// Path-based calls Node lacks: mount, umount2, mknod, l*xattr, utimensat,
// flock and statfs. Each returns a Promise and rejects with an errno error.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <memory>
#include <vector>

#include "addon/common.h"

namespace strata {
namespace {

Napi::Value Undefined(Napi::Env env) { return env.Undefined(); }

Napi::Value Mount(const Napi::CallbackInfo& info) {
  bool hasSource, hasType, hasData;
  std::string source = ArgOptString(info, 0, "source", &hasSource);
  std::string target = ArgString(info, 1, "target");
  std::string fstype = ArgOptString(info, 2, "fstype", &hasType);
  uint64_t flags = static_cast<uint64_t>(ArgOptInt(info, 3, "flags", 0));
  std::string data = ArgOptString(info, 4, "data", &hasData);
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        if (mount(hasSource ? source.c_str() : nullptr, target.c_str(), hasType ? fstype.c_str() : nullptr,
                  flags, hasData ? data.c_str() : nullptr) != 0)
          return Fail(e, "mount", target);
        return true;
      },
      Undefined);
}

Napi::Value Umount2(const Napi::CallbackInfo& info) {
  std::string target = ArgString(info, 0, "target");
  int flags = static_cast<int>(ArgOptInt(info, 1, "flags", 0));
  return RunAsync(
      info.Env(),
      [=](SysError& e) { return umount2(target.c_str(), flags) == 0 || Fail(e, "umount2", target); },
      Undefined);
}

Napi::Value Mknod(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  mode_t mode = static_cast<mode_t>(ArgInt(info, 1, "mode"));
  unsigned major_ = static_cast<unsigned>(ArgOptInt(info, 2, "major", 0));
  unsigned minor_ = static_cast<unsigned>(ArgOptInt(info, 3, "minor", 0));
  return RunAsync(
      info.Env(),
      [=](SysError& e) { return mknod(path.c_str(), mode, makedev(major_, minor_)) == 0 || Fail(e, "mknod", path); },
      Undefined);
}

Napi::Value Lgetxattr(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  std::string name = ArgString(info, 1, "name");
  auto value = std::make_shared<std::vector<char>>();
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        for (;;) {
          ssize_t n = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
          if (n < 0) return Fail(e, "lgetxattr", path);
          value->resize(static_cast<size_t>(n));
          n = lgetxattr(path.c_str(), name.c_str(), value->data(), value->size());
          if (n >= 0) {
            value->resize(static_cast<size_t>(n));
            return true;
          }
          if (errno != ERANGE) return Fail(e, "lgetxattr", path);
        }
      },
      [=](Napi::Env env) -> Napi::Value {
        return Napi::Buffer<char>::Copy(env, value->data(), value->size());
      });
}

Napi::Value Lsetxattr(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  std::string name = ArgString(info, 1, "name");
  Napi::Buffer<uint8_t> buf = ArgBuffer(info, 2, "value");
  auto value = std::make_shared<std::vector<char>>(buf.Data(), buf.Data() + buf.Length());
  int flags = static_cast<int>(ArgOptInt(info, 3, "flags", 0));
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        return lsetxattr(path.c_str(), name.c_str(), value->data(), value->size(), flags) == 0 ||
               Fail(e, "lsetxattr", path);
      },
      Undefined);
}

Napi::Value Llistxattr(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  auto list = std::make_shared<std::vector<char>>();
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        for (;;) {
          ssize_t n = llistxattr(path.c_str(), nullptr, 0);
          if (n < 0) return Fail(e, "llistxattr", path);
          list->resize(static_cast<size_t>(n));
          if (n == 0) return true;
          n = llistxattr(path.c_str(), list->data(), list->size());
          if (n >= 0) {
            list->resize(static_cast<size_t>(n));
            return true;
          }
          if (errno != ERANGE) return Fail(e, "llistxattr", path);
        }
      },
      [=](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env);
        size_t i = 0, start = 0;
        for (size_t k = 0; k < list->size(); k++) {
          if ((*list)[k] == '\0') {
            out.Set(i++, Napi::String::New(env, list->data() + start, k - start));
            start = k + 1;
          }
        }
        return out;
      });
}

Napi::Value Lremovexattr(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  std::string name = ArgString(info, 1, "name");
  return RunAsync(
      info.Env(),
      [=](SysError& e) { return lremovexattr(path.c_str(), name.c_str()) == 0 || Fail(e, "lremovexattr", path); },
      Undefined);
}

// utimensat(dirfd, path, atimeSec, atimeNsec, mtimeSec, mtimeNsec, flags)
Napi::Value Utimensat(const Napi::CallbackInfo& info) {
  int dirfd = static_cast<int>(ArgInt(info, 0, "dirfd"));
  std::string path = ArgString(info, 1, "path");
  struct timespec ts[2];
  ts[0].tv_sec = ArgInt(info, 2, "atimeSec");
  ts[0].tv_nsec = ArgInt(info, 3, "atimeNsec");
  ts[1].tv_sec = ArgInt(info, 4, "mtimeSec");
  ts[1].tv_nsec = ArgInt(info, 5, "mtimeNsec");
  int flags = static_cast<int>(ArgOptInt(info, 6, "flags", 0));
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        int r = path.empty() ? futimens(dirfd, ts) : utimensat(dirfd, path.c_str(), ts, flags);
        return r == 0 || Fail(e, "utimensat", path);
      },
      Undefined);
}

Napi::Value Flock(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(ArgInt(info, 0, "fd"));
  int op = static_cast<int>(ArgInt(info, 1, "operation"));
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        int r;
        do r = flock(fd, op);
        while (r != 0 && errno == EINTR);
        return r == 0 || Fail(e, "flock", "");
      },
      Undefined);
}

Napi::Value Statfs(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  auto st = std::make_shared<struct statfs>();
  return RunAsync(
      info.Env(), [=](SysError& e) { return statfs(path.c_str(), st.get()) == 0 || Fail(e, "statfs", path); },
      [=](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("type", Napi::Number::New(env, static_cast<double>(static_cast<uint32_t>(st->f_type))));
        o.Set("bsize", Napi::Number::New(env, static_cast<double>(st->f_bsize)));
        o.Set("frsize", Napi::Number::New(env, static_cast<double>(st->f_frsize)));
        o.Set("blocks", Napi::Number::New(env, static_cast<double>(st->f_blocks)));
        o.Set("bfree", Napi::Number::New(env, static_cast<double>(st->f_bfree)));
        o.Set("bavail", Napi::Number::New(env, static_cast<double>(st->f_bavail)));
        o.Set("files", Napi::Number::New(env, static_cast<double>(st->f_files)));
        o.Set("ffree", Napi::Number::New(env, static_cast<double>(st->f_ffree)));
        o.Set("namelen", Napi::Number::New(env, static_cast<double>(st->f_namelen)));
        o.Set("flags", Napi::Number::New(env, static_cast<double>(st->f_flags)));
        return o;
      });
}

}  // namespace

void InitFs(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount));
  exports.Set("umount2", Napi::Function::New(env, Umount2));
  exports.Set("mknod", Napi::Function::New(env, Mknod));
  exports.Set("lgetxattr", Napi::Function::New(env, Lgetxattr));
  exports.Set("lsetxattr", Napi::Function::New(env, Lsetxattr));
  exports.Set("llistxattr", Napi::Function::New(env, Llistxattr));
  exports.Set("lremovexattr", Napi::Function::New(env, Lremovexattr));
  exports.Set("utimensat", Napi::Function::New(env, Utimensat));
  exports.Set("flock", Napi::Function::New(env, Flock));
  exports.Set("statfs", Napi::Function::New(env, Statfs));
}

}  // namespace strata
