// Loop devices by ioctl: attach a file (LOOP_CTL_GET_FREE + LOOP_CONFIGURE
// with direct I/O and autoclear), detach (LOOP_CLR_FD), and read back the
// backing file of a device (LOOP_GET_STATUS64) for crash recovery.
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "addon/common.h"

namespace strata {
namespace {

struct Attached {
  int index = -1;
  bool directIO = false;
};

// attachLoop(file, {readOnly, directIO, autoclear}) -> {device, index, directIO}
Napi::Value AttachLoop(const Napi::CallbackInfo& info) {
  std::string file = ArgString(info, 0, "file");
  bool readOnly = false, directIO = true, autoclear = true;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("readOnly")) readOnly = o.Get("readOnly").ToBoolean();
    if (o.Has("directIO")) directIO = o.Get("directIO").ToBoolean();
    if (o.Has("autoclear")) autoclear = o.Get("autoclear").ToBoolean();
  }
  auto out = std::make_shared<Attached>();
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        int ffd = open(file.c_str(), (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (directIO ? O_DIRECT : 0));
        bool dio = directIO;
        if (ffd < 0 && directIO && errno == EINVAL) {  // filesystem without O_DIRECT (tmpfs)
          dio = false;
          ffd = open(file.c_str(), (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        }
        if (ffd < 0) return Fail(e, "open", file);
        int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0) {
          Fail(e, "open", "/dev/loop-control");
          close(ffd);
          return false;
        }
        bool ok = false;
        for (int attempt = 0; attempt < 64 && !ok; attempt++) {
          int idx = ioctl(ctl, LOOP_CTL_GET_FREE);
          if (idx < 0) {
            Fail(e, "ioctl(LOOP_CTL_GET_FREE)", "/dev/loop-control");
            break;
          }
          std::string dev = "/dev/loop" + std::to_string(idx);
          int lfd = open(dev.c_str(), (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
          if (lfd < 0) {
            if (errno == ENOENT) {  // node not created yet by devtmpfs
              usleep(1000);
              continue;
            }
            Fail(e, "open", dev);
            break;
          }
          struct loop_config cfg;
          memset(&cfg, 0, sizeof(cfg));
          cfg.fd = static_cast<uint32_t>(ffd);
          cfg.info.lo_flags = (readOnly ? LO_FLAGS_READ_ONLY : 0) | (autoclear ? LO_FLAGS_AUTOCLEAR : 0) |
                              (dio ? LO_FLAGS_DIRECT_IO : 0);
          strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), file.c_str(), LO_NAME_SIZE - 1);
          int r = ioctl(lfd, LOOP_CONFIGURE, &cfg);
          if (r != 0 && errno == EINVAL && dio) {  // backing fs refuses direct I/O: plain buffered loop
            cfg.info.lo_flags &= ~LO_FLAGS_DIRECT_IO;
            dio = false;
            r = ioctl(lfd, LOOP_CONFIGURE, &cfg);
          }
          int saved = errno;
          close(lfd);
          if (r == 0) {
            out->index = idx;
            out->directIO = dio;
            ok = true;
          } else if (saved != EBUSY) {  // EBUSY: another process took it first
            errno = saved;
            Fail(e, "ioctl(LOOP_CONFIGURE)", dev);
            break;
          }
        }
        if (!ok && e.err == 0) {
          e.err = EBUSY;
          e.syscall = "ioctl(LOOP_CONFIGURE)";
          e.path = file;
        }
        close(ctl);
        close(ffd);  // the loop device holds its own reference
        return ok;
      },
      [=](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("device", Napi::String::New(env, "/dev/loop" + std::to_string(out->index)));
        o.Set("index", Napi::Number::New(env, out->index));
        o.Set("directIO", Napi::Boolean::New(env, out->directIO));
        return o;
      });
}

Napi::Value DetachLoop(const Napi::CallbackInfo& info) {
  std::string dev = ArgString(info, 0, "device");
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        int fd = open(dev.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return Fail(e, "open", dev);
        int r = ioctl(fd, LOOP_CLR_FD, 0);
        int saved = errno;
        close(fd);
        if (r != 0) {
          errno = saved;
          return Fail(e, "ioctl(LOOP_CLR_FD)", dev);
        }
        return true;
      },
      [](Napi::Env env) { return env.Undefined(); });
}

// loopStatus(device) -> {backingFile, offset, sizelimit, flags, backingDevice, backingInode} ; ENXIO if unbound.
// backingDevice is the st_dev of the backing file's filesystem, so a caller can
// tell a file of a live mount from one of a dead mount at the same path.
Napi::Value LoopStatus(const Napi::CallbackInfo& info) {
  std::string dev = ArgString(info, 0, "device");
  auto st = std::make_shared<loop_info64>();
  return RunAsync(
      info.Env(),
      [=](SysError& e) {
        int fd = open(dev.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return Fail(e, "open", dev);
        int r = ioctl(fd, LOOP_GET_STATUS64, st.get());
        int saved = errno;
        close(fd);
        if (r != 0) {
          errno = saved;
          return Fail(e, "ioctl(LOOP_GET_STATUS64)", dev);
        }
        return true;
      },
      [=](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        size_t n = strnlen(reinterpret_cast<const char*>(st->lo_file_name), LO_NAME_SIZE);
        o.Set("backingFile", Napi::String::New(env, reinterpret_cast<const char*>(st->lo_file_name), n));
        o.Set("offset", Napi::Number::New(env, static_cast<double>(st->lo_offset)));
        o.Set("sizelimit", Napi::Number::New(env, static_cast<double>(st->lo_sizelimit)));
        o.Set("flags", Napi::Number::New(env, st->lo_flags));
        o.Set("backingDevice", Napi::Number::New(env, static_cast<double>(st->lo_device)));
        o.Set("backingInode", Napi::Number::New(env, static_cast<double>(st->lo_inode)));
        return o;
      });
}

}  // namespace

void InitLoop(Napi::Env env, Napi::Object exports) {
  exports.Set("attachLoop", Napi::Function::New(env, AttachLoop));
  exports.Set("detachLoop", Napi::Function::New(env, DetachLoop));
  exports.Set("loopStatus", Napi::Function::New(env, LoopStatus));
}

}  // namespace strata
