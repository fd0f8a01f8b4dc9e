// Shared helpers for strata's native calls: argument checking that throws
// TypeError instead of crashing, errno errors shaped like Node's own
// (code, errno, syscall, path), and a tiny promise-returning worker so that
// calls which may block (mount, umount, flock, loop ioctls) stay off the
// event loop.
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>

namespace strata {

// A failed system call, carried from a worker thread back to JavaScript.
struct SysError {
  int err = 0;
  std::string syscall;
  std::string path;
  // Set for a refusal that is not a plain errno: becomes an Error with this
  // `code` and `message` and `strata: true` (src/native.ts makes it a StrataError).
  std::string code;
  std::string message;
};

Napi::Error ErrnoError(Napi::Env env, const SysError& e);

// Argument helpers: each throws a JS TypeError naming the argument.
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgOptString(const Napi::CallbackInfo& info, size_t i, const char* name, bool* present);
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t ArgOptInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t dflt);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name);

// Runs `work` on the libuv thread pool. `work` returns true on success or
// fills the SysError and returns false. `done` turns the result into a JS
// value on the main thread.
Napi::Promise RunAsync(Napi::Env env, std::function<bool(SysError&)> work,
                       std::function<Napi::Value(Napi::Env)> done);

inline bool Fail(SysError& e, const char* syscall, const std::string& path) {
  e.err = errno;
  e.syscall = syscall;
  e.path = path;
  return false;
}

void InitFs(Napi::Env env, Napi::Object exports);
void InitAt(Napi::Env env, Napi::Object exports);
void InitLoop(Napi::Env env, Napi::Object exports);
void InitScan(Napi::Env env, Napi::Object exports);
void InitExportScan(Napi::Env env, Napi::Object exports);
void InitApply(Napi::Env env, Napi::Object exports);
void InitTarIndex(Napi::Env env, Napi::Object exports);
void InitCodec(Napi::Env env, Napi::Object exports);
void InitOverlay(Napi::Env env, Napi::Object exports);
void InitRemoveTree(Napi::Env env, Napi::Object exports);

}  // namespace strata
