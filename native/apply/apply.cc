// NativeApplier: a layer root plus one dedicated thread that takes the
// layer tar itself, parses it and applies it (tar_apply.h), strictly in
// write order:
//
//   const a = new NativeApplier("/layer/root", threads, { whiteouts, uidMap, gidMap, record });
//   a.write(chunks) -> Promise<{ warnings, moreWarnings, records, files }>   // Buffers of the tar, in order
//   a.finish()      -> Promise<{ size, warnings, moreWarnings, records, files }>
//   a.close()       -> Promise<void>
//
// With threads > 1, entries flagged independent run on an ApplyPool.
// `records` are the tar-split index records written meanwhile (with
// `record`). The chunks stay referenced until their write is done, so file
// bodies inside one chunk are written from it without a copy. JavaScript
// may queue many writes without waiting: parsing the next chunk overlaps
// with the filesystem work of this one. After a failure every later write
// is rejected with `aborted: true`, so the first error is the one reported.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "apply/apply_pool.h"
#include "addon/task_queue.h"
#include "apply/tar_apply.h"

namespace strata {
namespace {

struct Task {
  explicit Task(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise::Deferred deferred;
  Napi::ObjectReference chunksRef;  // keeps the bytes alive until done
  std::vector<struct iovec> chunks;  // the tar chunks of a write
  bool finish = false, close = false;
  // results
  bool ok = true, aborted = false;
  SysError err;
  std::string format;  // an unexpected failure (a bug)
  std::vector<std::string> warnings;
  uint64_t moreWarnings = 0;  // warnings counted, not kept
  std::string records;
  uint32_t files = 0;
  int64_t size = 0;
};

std::vector<IdRange> ArgIdMap(Napi::Env env, Napi::Value v) {
  std::vector<IdRange> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(env, "id maps must be arrays");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Object m = a.Get(i).As<Napi::Object>();
    out.push_back({m.Get("containerId").ToNumber().Uint32Value(), m.Get("hostId").ToNumber().Uint32Value(),
                   m.Get("size").ToNumber().Uint32Value()});
  }
  return out;
}

class NativeApplier : public Napi::ObjectWrap<NativeApplier>, public OpSink {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeApplier",
                       {InstanceMethod("write", &NativeApplier::Write), InstanceMethod("finish", &NativeApplier::Finish),
                        InstanceMethod("close", &NativeApplier::Close)});
  }

  explicit NativeApplier(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeApplier>(info) {
    Napi::Env env = info.Env();
    std::string root = ArgString(info, 0, "root");
    int threads = static_cast<int>(ArgOptInt(info, 1, "threads", 0));
    if (info.Length() < 3 || !info[2].IsObject()) throw Napi::TypeError::New(env, "Argument 2 (options) must be an object");
    Napi::Object o = info[2].As<Napi::Object>();
    TarApplyOptions opts;
    opts.overlayWhiteouts = o.Get("whiteouts").IsString() && o.Get("whiteouts").As<Napi::String>().Utf8Value() == "overlay";
    opts.record = o.Get("record").ToBoolean();
    opts.uidMap = ArgIdMap(env, o.Get("uidMap"));
    opts.gidMap = ArgIdMap(env, o.Get("gidMap"));
    int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      SysError e;
      Fail(e, "openat2", root);
      throw ErrnoError(env, e);
    }
    rootFd_ = fd;
    fs_ = std::make_unique<ApplyFs>(fd);
    if (threads > 1) pool_ = std::make_unique<ApplyPool>(fd, std::min(threads, 16));
    opts.parallel = pool_ != nullptr;
    tar_ = std::make_unique<TarApply>(std::move(opts), this);
    tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function(), "strata-apply", 0, 1);
    thread_ = std::thread([this] { Loop(); });
  }

  ~NativeApplier() override {
    if (!thread_.joinable()) return;
    if (!closed_) Enqueue(nullptr);  // collected without close(): stop quietly
    thread_.join();
  }

 private:
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw Napi::Error::New(env, "NativeApplier is closed");
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "Argument 0 (chunks) must be an array");
    Napi::Array arr = info[0].As<Napi::Array>();
    auto t = std::make_unique<Task>(env);
    t->chunks.resize(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr[i];
      if (!v.IsBuffer()) throw Napi::TypeError::New(env, "chunks must be Buffers");
      auto b = v.As<Napi::Buffer<uint8_t>>();
      t->chunks[i] = {b.Data(), b.Length()};
    }
    t->chunksRef = Napi::Persistent(arr.As<Napi::Object>());
    Napi::Promise p = t->deferred.Promise();
    Enqueue(t.release());
    return p;
  }

  Napi::Value Finish(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw Napi::Error::New(env, "NativeApplier is closed");
    auto* t = new Task(env);
    t->finish = true;
    Napi::Promise p = t->deferred.Promise();
    Enqueue(t);
    return p;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (closed_) throw Napi::Error::New(info.Env(), "NativeApplier is closed");
    closed_ = true;
    auto* t = new Task(info.Env());
    t->close = true;
    Napi::Promise p = t->deferred.Promise();
    Enqueue(t);
    return p;
  }

  void Enqueue(Task* t) { queue_.Push(t); }

  void Loop() {
    for (;;) {
      Task* t = queue_.Pop();
      if (t == nullptr || t->close) {
        pool_.reset();
        tar_.reset();
        fs_.reset();
        close(rootFd_);
        if (t) tsfn_.BlockingCall(t, Complete);
        tsfn_.Release();
        return;
      }
      if (failed_) t->aborted = true;
      else Execute(*t);
      if (!t->ok || t->aborted) failed_ = true;
      tsfn_.BlockingCall(t, Complete);
    }
  }

  // OpSink: one op of the chunk being parsed, on the pool when it is flagged
  // independent, else alone after the pool drains.
  bool Run(std::unique_ptr<ApplyOpRec> op, const struct iovec* bufs) override {
    Task& t = *current_;
    uint64_t seq = seq_++;
    if (pool_ && (op->op & kOpParallel)) {
      pool_->Dispatch(seq, std::move(op), bufs);
      return true;
    }
    if (pool_ && !pool_->Wait(t.err, t.warnings)) return false;  // a barrier: everything before it is done first
    uint64_t removals = fs_->removals();
    if (!fs_->Run(*op, bufs, t.err, t.warnings)) return false;
    if (pool_ && fs_->removals() != removals) pool_->DropCaches();
    return true;
  }

  // A write or the finish of the tar: parse and apply. The chunks and the engine's own
  // body memory stay valid until the pool has drained at the end.
  void Execute(Task& t) {
    current_ = &t;
    try {
      if (t.finish) {
        t.ok = tar_->Finish();
      } else {
        for (auto& c : t.chunks)
          if (!(t.ok = tar_->Feed(static_cast<const uint8_t*>(c.iov_base), c.iov_len))) break;
      }
    } catch (const TarError& ex) {
      t.ok = false;
      t.err.code = ex.code;
      t.err.message = ex.what();
    } catch (const std::exception& ex) {
      t.ok = false;
      t.format = ex.what();
    }
    // A failure of an independent op still on the pool came earlier in the archive: it wins.
    SysError poolErr;
    if (pool_ && !pool_->Wait(poolErr, t.warnings)) {
      t.ok = false;
      t.err = poolErr;
      t.format.clear();
    }
    tar_->ReleaseBodies();
    t.moreWarnings = tar_->TakeWarnings(t.warnings);
    t.records = tar_->TakeRecords(&t.files);
    if (t.finish) t.size = tar_->size();
    current_ = nullptr;
  }

  static void Complete(Napi::Env env, Napi::Function, Task* t) {
    if (t->close) {
      t->deferred.Resolve(env.Undefined());
    } else if (t->aborted) {
      Napi::Error e = Napi::Error::New(env, "apply aborted after an earlier failure");
      e.Set("aborted", Napi::Boolean::New(env, true));
      t->deferred.Reject(e.Value());
    } else if (!t->ok) {
      t->deferred.Reject(t->format.empty() ? ErrnoError(env, t->err).Value()
                                           : Napi::Error::New(env, t->format).Value());
    } else {
      Napi::Array w = Napi::Array::New(env, t->warnings.size());
      for (size_t i = 0; i < t->warnings.size(); i++) w.Set(i, Napi::String::New(env, t->warnings[i]));
      Napi::Object r = Napi::Object::New(env);
      r.Set("warnings", w);
      r.Set("moreWarnings", Napi::Number::New(env, static_cast<double>(t->moreWarnings)));
      r.Set("records", Napi::Buffer<char>::Copy(env, t->records.data(), t->records.size()));
      r.Set("files", Napi::Number::New(env, t->files));
      if (t->finish) r.Set("size", Napi::Number::New(env, static_cast<double>(t->size)));
      t->deferred.Resolve(r);
    }
    delete t;
  }

  std::unique_ptr<ApplyFs> fs_;
  std::unique_ptr<ApplyPool> pool_;  // null: every op runs on the applier thread
  std::unique_ptr<TarApply> tar_;
  Task* current_ = nullptr;  // the task Execute runs
  uint64_t seq_ = 0;         // op number in archive order
  int rootFd_ = -1;
  bool closed_ = false;
  bool failed_ = false;  // touched by the worker thread only
  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
  TaskQueue<Task> queue_;
};

}  // namespace

void InitApply(Napi::Env env, Napi::Object exports) { exports.Set("NativeApplier", NativeApplier::Define(env)); }

}  // namespace strata
