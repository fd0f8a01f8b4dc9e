// The test addon (`strata_test_native`): the filesystem back end of the
// JavaScript apply engine that the differential tests use as their oracle
// (test/oracle/). JavaScript parses the tar and decides what each entry
// means; this executes the resulting ops with the product's ApplyFs and
// ApplyPool, strictly in submission order:
//
//   const a = new BatchApplier("/layer/root", threads);  // threads > 1: ApplyPool
//   a.submit(meta, bodies) -> Promise<string[]>   // xattr warnings
//   a.close() -> Promise<void>
//
// `meta` is the encoded op list (test/oracle/batch.ts), `bodies` the
// Buffers holding file contents, consumed in op order (`nbufs` per op);
// both stay referenced until the batch is done. After a failed op every
// later batch is rejected with `aborted: true`.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "addon/task_queue.h"
#include "apply/apply_pool.h"

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

struct Batch {
  explicit Batch(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise::Deferred deferred;
  Napi::ObjectReference metaRef, bodiesRef;  // keep the bytes alive until done
  const uint8_t* meta = nullptr;
  size_t metaLen = 0;
  std::vector<struct iovec> bodies;
  bool close = false;
  bool ok = true, aborted = false;
  SysError err;
  std::string format;  // a malformed batch (a bug in the encoder)
  std::vector<std::string> warnings;
};

class BatchApplier : public Napi::ObjectWrap<BatchApplier> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BatchApplier",
                       {InstanceMethod("submit", &BatchApplier::Submit), InstanceMethod("close", &BatchApplier::Close)});
  }

  explicit BatchApplier(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BatchApplier>(info) {
    std::string root = ArgString(info, 0, "root");
    int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      SysError e;
      Fail(e, "openat2", root);
      throw ErrnoError(info.Env(), e);
    }
    rootFd_ = fd;
    fs_ = std::make_unique<ApplyFs>(fd);
    int threads = static_cast<int>(ArgOptInt(info, 1, "threads", 0));
    if (threads > 1) pool_ = std::make_unique<ApplyPool>(fd, std::min(threads, 16));
    tsfn_ = Napi::ThreadSafeFunction::New(info.Env(), Napi::Function(), "strata-test-apply", 0, 1);
    thread_ = std::thread([this] { Loop(); });
  }

  ~BatchApplier() override {
    if (!thread_.joinable()) return;
    if (!closed_) queue_.Push(nullptr);
    thread_.join();
  }

 private:
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw Napi::Error::New(env, "BatchApplier is closed");
    Napi::Buffer<uint8_t> meta = ArgBuffer(info, 0, "meta");
    if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "Argument 1 (bodies) must be an array");
    Napi::Array arr = info[1].As<Napi::Array>();
    auto b = std::make_unique<Batch>(env);
    b->meta = meta.Data();
    b->metaLen = meta.Length();
    b->bodies.resize(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr[i];
      if (!v.IsBuffer()) throw Napi::TypeError::New(env, "bodies must be Buffers");
      auto buf = v.As<Napi::Buffer<uint8_t>>();
      b->bodies[i] = {buf.Data(), buf.Length()};
    }
    b->metaRef = Napi::Persistent(meta.As<Napi::Object>());
    b->bodiesRef = Napi::Persistent(arr.As<Napi::Object>());
    Napi::Promise p = b->deferred.Promise();
    queue_.Push(b.release());
    return p;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (closed_) throw Napi::Error::New(info.Env(), "BatchApplier is closed");
    closed_ = true;
    auto* b = new Batch(info.Env());
    b->close = true;
    Napi::Promise p = b->deferred.Promise();
    queue_.Push(b);
    return p;
  }

  void Loop() {
    for (;;) {
      Batch* b = queue_.Pop();
      if (b == nullptr || b->close) {
        pool_.reset();
        fs_.reset();
        close(rootFd_);
        if (b) tsfn_.BlockingCall(b, Complete);
        tsfn_.Release();
        return;
      }
      if (failed_) b->aborted = true;
      else Execute(*b);
      if (!b->ok || b->aborted) failed_ = true;
      tsfn_.BlockingCall(b, Complete);
    }
  }

  bool RunOp(std::unique_ptr<ApplyOpRec> op, const struct iovec* bufs, Batch& b) {
    uint64_t seq = seq_++;
    if (pool_ && (op->op & kOpParallel)) {
      pool_->Dispatch(seq, std::move(op), bufs);
      return true;
    }
    if (pool_ && !pool_->Wait(b.err, b.warnings)) return false;
    uint64_t removals = fs_->removals();
    if (!fs_->Run(*op, bufs, b.err, b.warnings)) return false;
    if (pool_ && fs_->removals() != removals) pool_->DropCaches();
    return true;
  }

  void Execute(Batch& b) {
    try {
      BatchReader r(b.meta, b.metaLen);
      size_t nextBody = 0;
      while (r.More()) {
        auto op = std::make_unique<ApplyOpRec>();
        DecodeOp(r, *op);
        if (nextBody + op->nbufs > b.bodies.size()) throw std::runtime_error("apply batch refers to missing bodies");
        const struct iovec* bufs = b.bodies.data() + nextBody;
        nextBody += op->nbufs;
        if (!RunOp(std::move(op), bufs, b)) {
          b.ok = false;
          return;
        }
      }
      if (pool_ && !pool_->Wait(b.err, b.warnings)) b.ok = false;
    } catch (const std::exception& ex) {
      SysError ignored;
      if (pool_) pool_->Wait(ignored, b.warnings);  // the bodies must outlive the queued ops
      b.ok = false;
      b.format = ex.what();
    }
  }

  static void Complete(Napi::Env env, Napi::Function, Batch* b) {
    if (b->close) {
      b->deferred.Resolve(env.Undefined());
    } else if (b->aborted) {
      Napi::Error e = Napi::Error::New(env, "apply aborted after an earlier failure");
      e.Set("aborted", Napi::Boolean::New(env, true));
      b->deferred.Reject(e.Value());
    } else if (!b->ok) {
      b->deferred.Reject(b->format.empty() ? ErrnoError(env, b->err).Value()
                                           : Napi::Error::New(env, b->format).Value());
    } else {
      Napi::Array w = Napi::Array::New(env, b->warnings.size());
      for (size_t i = 0; i < b->warnings.size(); i++) w.Set(i, Napi::String::New(env, b->warnings[i]));
      b->deferred.Resolve(w);
    }
    delete b;
  }

  std::unique_ptr<ApplyFs> fs_;
  std::unique_ptr<ApplyPool> pool_;
  uint64_t seq_ = 0;
  int rootFd_ = -1;
  bool closed_ = false;
  bool failed_ = false;  // worker thread only
  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
  TaskQueue<Batch> queue_;
};

}  // namespace
}  // namespace strata

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("BatchApplier", strata::BatchApplier::Define(env));
  return exports;
}

NODE_API_MODULE(strata_test_native, Init)
