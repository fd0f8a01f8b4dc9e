// NativeApplier: a layer root plus one dedicated thread that executes
// batches of apply ops (apply_fs.h) strictly in submission order.
//
//   const a = new NativeApplier("/layer/root", threads);  // threads > 1: ApplyPool
//   a.submit(meta, bodies) -> Promise<string[]>   // xattr warnings
//   a.close() -> Promise<void>
//
// Or, constructed with tar options (`{ whiteouts, uidMap, gidMap, record }`),
// it takes the layer tar itself and parses it on its thread (tar_apply.h):
//   a.write(chunks) -> Promise<{ warnings, records, files }>   // Buffers of the tar, in order
//   a.finish() -> Promise<{ size, warnings, records, files }>
// `records` are the tar-split index records written meanwhile (with `record`).
//
// `meta` is the encoded op list (src/diff/native-batch.ts), `bodies` the
// Buffers holding file contents, consumed in op order (`nbufs` per op). Both
// stay referenced until the batch is done, so bodies are written straight
// from the tar reader's buffers without a copy. JavaScript may submit many
// batches without waiting: parsing the next batch overlaps with executing
// this one. After a failed op every later batch is rejected with
// `aborted: true`, so the first error is the one reported.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "apply/apply_pool.h"
#include "addon/task_queue.h"
#include "apply/tar_apply.h"

namespace strata {
namespace {

class BatchReader {
 public:
  BatchReader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool More() const { return p_ < end_; }
  uint32_t U32() {
    uint32_t v;
    Take(&v, 4);
    return v;
  }
  double F64() {
    double v;
    Take(&v, 8);
    return v;
  }
  std::string Str() {
    uint32_t n = U32();
    Need(n);
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }

 private:
  void Need(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) throw std::runtime_error("truncated apply batch");
  }
  void Take(void* out, size_t n) {
    Need(n);
    memcpy(out, p_, n);
    p_ += n;
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

void DecodeOp(BatchReader& r, ApplyOpRec& op) {
  op.op = r.U32();
  op.kind = r.U32();
  op.mode = r.U32();
  op.uid = r.U32();
  op.gid = r.U32();
  op.major = r.U32();
  op.minor = r.U32();
  op.handle = r.U32();
  op.nbufs = r.U32();
  for (auto& t : op.times) {
    t.tv_sec = static_cast<time_t>(r.F64());
    t.tv_nsec = r.U32();
  }
  op.name = r.Str();
  op.parent = r.Str();
  op.base = r.Str();
  op.link1 = r.Str();
  op.link2 = r.Str();
  op.xattrs.resize(r.U32());
  for (auto& x : op.xattrs) {
    x.key = r.Str();
    x.value = r.Str();
  }
  op.keep.resize(r.U32());
  for (auto& k : op.keep) k = r.Str();
}

struct Task {
  explicit Task(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise::Deferred deferred;
  Napi::ObjectReference metaRef, bodiesRef;  // keep the bytes alive until done
  const uint8_t* meta = nullptr;
  size_t metaLen = 0;
  std::vector<struct iovec> bodies;  // a batch's bodies, or the tar chunks of a write
  bool tar = false, finish = false, close = false;
  // results
  bool ok = true, aborted = false;
  SysError err;
  std::string format;  // a malformed batch (a bug in the encoder)
  std::vector<std::string> warnings;
  std::string records;  // tar mode
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
                       {InstanceMethod("submit", &NativeApplier::Submit), InstanceMethod("write", &NativeApplier::Write),
                        InstanceMethod("finish", &NativeApplier::Finish), InstanceMethod("close", &NativeApplier::Close)});
  }

  explicit NativeApplier(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeApplier>(info) {
    std::string root = ArgString(info, 0, "root");
    int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      SysError e;
      Fail(e, "openat2", root);
      throw ErrnoError(info.Env(), e);
    }
    fs_ = std::make_unique<ApplyFs>(fd);
    int threads = static_cast<int>(ArgOptInt(info, 1, "threads", 0));
    if (threads > 1) pool_ = std::make_unique<ApplyPool>(fd, std::min(threads, 16));
    rootFd_ = fd;
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Object o = info[2].As<Napi::Object>();
      TarApplyOptions opts;
      opts.overlayWhiteouts = o.Get("whiteouts").IsString() && o.Get("whiteouts").As<Napi::String>().Utf8Value() == "overlay";
      opts.parallel = pool_ != nullptr;
      opts.record = o.Get("record").ToBoolean();
      opts.uidMap = ArgIdMap(info.Env(), o.Get("uidMap"));
      opts.gidMap = ArgIdMap(info.Env(), o.Get("gidMap"));
      tar_ = std::make_unique<TarApply>(std::move(opts), this);
    }
    tsfn_ = Napi::ThreadSafeFunction::New(info.Env(), Napi::Function(), "strata-apply", 0, 1);
    thread_ = std::thread([this] { Loop(); });
  }

  ~NativeApplier() override {
    if (!thread_.joinable()) return;
    if (!closed_) Enqueue(nullptr);  // collected without close(): stop quietly
    thread_.join();
  }

 private:
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw Napi::Error::New(env, "NativeApplier is closed");
    Napi::Buffer<uint8_t> meta = ArgBuffer(info, 0, "meta");
    if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "Argument 1 (bodies) must be an array");
    Napi::Array bodies = info[1].As<Napi::Array>();
    auto* t = new Task(env);
    t->meta = meta.Data();
    t->metaLen = meta.Length();
    t->metaRef = Napi::Persistent(meta.As<Napi::Object>());
    return EnqueueWithBuffers(env, t, bodies, "bodies");
  }

  // Takes the Buffers of `arr` as the task's bodies (held until it is done) and queues it.
  Napi::Value EnqueueWithBuffers(Napi::Env env, Task* t, Napi::Array arr, const char* what) {
    t->bodies.resize(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr[i];
      if (!v.IsBuffer()) {
        delete t;
        throw Napi::TypeError::New(env, std::string(what) + " must be Buffers");
      }
      auto b = v.As<Napi::Buffer<uint8_t>>();
      t->bodies[i] = {b.Data(), b.Length()};
    }
    t->bodiesRef = Napi::Persistent(arr.As<Napi::Object>());
    Napi::Promise p = t->deferred.Promise();
    Enqueue(t);
    return p;
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw Napi::Error::New(env, "NativeApplier is closed");
    if (!tar_) throw Napi::Error::New(env, "NativeApplier was made without tar options");
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "Argument 0 (chunks) must be an array");
    auto* t = new Task(env);
    t->tar = true;
    return EnqueueWithBuffers(env, t, info[0].As<Napi::Array>(), "chunks");
  }

  Napi::Value Finish(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw Napi::Error::New(env, "NativeApplier is closed");
    if (!tar_) throw Napi::Error::New(env, "NativeApplier was made without tar options");
    auto* t = new Task(env);
    t->tar = true;
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
      else if (t->tar) ExecuteTar(*t);
      else Execute(*t);
      if (!t->ok || t->aborted) failed_ = true;
      tsfn_.BlockingCall(t, Complete);
    }
  }

  // Runs one op: on the pool when it is flagged independent, else alone after the pool drains.
  bool RunOp(std::unique_ptr<ApplyOpRec> op, const struct iovec* bufs, Task& t) {
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

  // OpSink, for the tar engine: ops of the task being executed.
  bool Run(std::unique_ptr<ApplyOpRec> op, const struct iovec* bufs) override { return RunOp(std::move(op), bufs, *current_); }

  void Execute(Task& t) {
    try {
      BatchReader r(t.meta, t.metaLen);
      size_t nextBody = 0;
      while (r.More()) {
        auto op = std::make_unique<ApplyOpRec>();
        DecodeOp(r, *op);
        if (nextBody + op->nbufs > t.bodies.size()) throw std::runtime_error("apply batch refers to missing bodies");
        const struct iovec* bufs = t.bodies.data() + nextBody;
        nextBody += op->nbufs;
        if (!RunOp(std::move(op), bufs, t)) {
          t.ok = false;
          return;
        }
      }
      if (pool_ && !pool_->Wait(t.err, t.warnings)) t.ok = false;
    } catch (const std::exception& ex) {
      SysError ignored;
      if (pool_) pool_->Wait(ignored, t.warnings);  // the bodies must outlive the queued ops
      t.ok = false;
      t.format = ex.what();
    }
  }

  // A write or the finish of a tar: parse and apply. The chunks and the engine's own
  // body memory stay valid until the pool has drained at the end.
  void ExecuteTar(Task& t) {
    current_ = &t;
    try {
      if (t.finish) {
        t.ok = tar_->Finish();
      } else {
        for (auto& c : t.bodies)
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
      if (t->tar) {
        Napi::Object r = Napi::Object::New(env);
        r.Set("warnings", w);
        r.Set("records", Napi::Buffer<char>::Copy(env, t->records.data(), t->records.size()));
        r.Set("files", Napi::Number::New(env, t->files));
        if (t->finish) r.Set("size", Napi::Number::New(env, static_cast<double>(t->size)));
        t->deferred.Resolve(r);
      } else {
        t->deferred.Resolve(w);
      }
    }
    delete t;
  }

  std::unique_ptr<ApplyFs> fs_;
  std::unique_ptr<ApplyPool> pool_;  // null: every op runs on the applier thread
  std::unique_ptr<TarApply> tar_;    // tar mode
  Task* current_ = nullptr;          // the task ExecuteTar runs
  uint64_t seq_ = 0;                 // op number in archive order
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
