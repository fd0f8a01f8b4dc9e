// Calls for the overlay driver that Node cannot make:
// - mountFrom: mount(2) with relative paths resolved from a given directory
//   (Docker's "mountfrom" trick for mount data over a page), done on a
//   short-lived thread with its own cwd (unshare(CLONE_FS)) so the process's
//   cwd never changes;
// - fsmountConfig: the new mount API (fsopen, fsconfig, fsmount, move_mount),
//   which takes overlay lowers one by one ("lowerdir+") with no page limit;
// - hasUnknownDtype: whether readdir on a directory reports DT_UNKNOWN
//   (overlayfs refuses upper filesystems without d_type).
#include <dirent.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "addon/common.h"

namespace strata {
namespace {

Napi::Value Undefined(Napi::Env env) { return env.Undefined(); }

Napi::Value MountFrom(const Napi::CallbackInfo& info) {
  std::string dir = ArgString(info, 0, "dir");
  std::string source = ArgString(info, 1, "source");
  std::string target = ArgString(info, 2, "target");
  std::string fstype = ArgString(info, 3, "fstype");
  uint64_t flags = static_cast<uint64_t>(ArgOptInt(info, 4, "flags", 0));
  std::string data = ArgString(info, 5, "data");
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        bool ok = false;
        // A fresh thread: its unshared fs struct (and cwd) dies with it.
        std::thread worker([&] {
          if (unshare(CLONE_FS) != 0) {
            Fail(e, "unshare", dir);
            return;
          }
          if (chdir(dir.c_str()) != 0) {
            Fail(e, "chdir", dir);
            return;
          }
          if (mount(source.c_str(), target.c_str(), fstype.c_str(), flags, data.c_str()) != 0) {
            Fail(e, "mount", target);
            return;
          }
          ok = true;
        });
        worker.join();
        return ok;
      },
      Undefined);
}

// fsmountConfig(fstype, params: Array<[key, value|null]>, target, attrFlags)
Napi::Value FsmountConfig(const Napi::CallbackInfo& info) {
  std::string fstype = ArgString(info, 0, "fstype");
  if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(info.Env(), "Argument 1 (params) must be an array");
  Napi::Array arr = info[1].As<Napi::Array>();
  auto params = std::make_shared<std::vector<std::pair<std::string, std::pair<bool, std::string>>>>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsArray()) throw Napi::TypeError::New(info.Env(), "params entries must be [key, value] arrays");
    Napi::Array kv = v.As<Napi::Array>();
    Napi::Value k = kv.Get(0u), val = kv.Get(1u);
    if (!k.IsString()) throw Napi::TypeError::New(info.Env(), "param key must be a string");
    bool hasValue = val.IsString();
    params->push_back({k.As<Napi::String>().Utf8Value(), {hasValue, hasValue ? val.As<Napi::String>().Utf8Value() : ""}});
  }
  std::string target = ArgString(info, 2, "target");
  unsigned attr = static_cast<unsigned>(ArgOptInt(info, 3, "attrFlags", 0));
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        int fs = static_cast<int>(syscall(SYS_fsopen, fstype.c_str(), FSOPEN_CLOEXEC));
        if (fs < 0) return Fail(e, "fsopen", fstype);
        for (auto& p : *params) {
          long r = p.second.first
                       ? syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, p.first.c_str(), p.second.second.c_str(), 0)
                       : syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, p.first.c_str(), nullptr, 0);
          if (r != 0) {
            Fail(e, "fsconfig", p.first + "=" + p.second.second);
            close(fs);
            return false;
          }
        }
        if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
          Fail(e, "fsconfig", "create");
          close(fs);
          return false;
        }
        int mfd = static_cast<int>(syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attr));
        if (mfd < 0) {
          Fail(e, "fsmount", target);
          close(fs);
          return false;
        }
        close(fs);
        // T_SYMLINKS: the target may be /proc/self/fd/N of a directory the caller checked
        // (mount(2) follows a target symlink the same way).
        long r = syscall(SYS_move_mount, mfd, "", AT_FDCWD, target.c_str(),
                         MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS);
        if (r != 0) Fail(e, "move_mount", target);
        close(mfd);
        return r == 0;
      },
      Undefined);
}

Napi::Value HasUnknownDtype(const Napi::CallbackInfo& info) {
  std::string dir = ArgString(info, 0, "dir");
  auto unknown = std::make_shared<bool>(false);
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        DIR* d = opendir(dir.c_str());
        if (!d) return Fail(e, "opendir", dir);
        errno = 0;
        while (struct dirent* ent = readdir(d)) {
          if (ent->d_type == DT_UNKNOWN) *unknown = true;
        }
        int err = errno;
        closedir(d);
        if (err != 0) {
          errno = err;
          return Fail(e, "readdir", dir);
        }
        return true;
      },
      [=](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, *unknown); });
}

}  // namespace

void InitOverlay(Napi::Env env, Napi::Object exports) {
  exports.Set("mountFrom", Napi::Function::New(env, MountFrom));
  exports.Set("fsmountConfig", Napi::Function::New(env, FsmountConfig));
  exports.Set("hasUnknownDtype", Napi::Function::New(env, HasUnknownDtype));
}

}  // namespace strata
