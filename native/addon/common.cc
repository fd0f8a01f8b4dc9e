#include "addon/common.h"

#include <string.h>

namespace strata {

Napi::Error ErrnoError(Napi::Env env, const SysError& e) {
  if (!e.code.empty()) {
    Napi::Error err = Napi::Error::New(env, e.message);
    err.Set("code", Napi::String::New(env, e.code));
    err.Set("strata", Napi::Boolean::New(env, true));
    return err;
  }
  const char* name = strerrorname_np(e.err);
  std::string code = name ? name : ("E" + std::to_string(e.err));
  std::string msg = code + ": " + strerror(e.err) + ", " + e.syscall;
  if (!e.path.empty()) msg += " '" + e.path + "'";
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  err.Set("errno", Napi::Number::New(env, -e.err));
  err.Set("syscall", Napi::String::New(env, e.syscall));
  if (!e.path.empty()) err.Set("path", Napi::String::New(env, e.path));
  return err;
}

static void ThrowType(const Napi::CallbackInfo& info, size_t i, const char* name, const char* want) {
  throw Napi::TypeError::New(info.Env(), std::string("Argument ") + std::to_string(i) + " (" +
                                             name + ") must be " + want);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) ThrowType(info, i, name, "a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) ThrowType(info, i, name, "a string without NUL bytes");
  return s;
}

std::string ArgOptString(const Napi::CallbackInfo& info, size_t i, const char* name, bool* present) {
  *present = false;
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return "";
  *present = true;
  return ArgString(info, i, name);
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) ThrowType(info, i, name, "a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d))) ThrowType(info, i, name, "an integer");
  return static_cast<int64_t>(d);
}

int64_t ArgOptInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t dflt) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return dflt;
  return ArgInt(info, i, name);
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBuffer()) ThrowType(info, i, name, "a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

namespace {
class Worker : public Napi::AsyncWorker {
 public:
  Worker(Napi::Env env, std::function<bool(SysError&)> work, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        done_(std::move(done)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { ok_ = work_(err_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (!ok_) {
      deferred_.Reject(ErrnoError(env, err_).Value());
      return;
    }
    try {
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<bool(SysError&)> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  SysError err_;
  bool ok_ = false;
};
}  // namespace

Napi::Promise RunAsync(Napi::Env env, std::function<bool(SysError&)> work,
                       std::function<Napi::Value(Napi::Env)> done) {
  auto* w = new Worker(env, std::move(work), std::move(done));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace strata
