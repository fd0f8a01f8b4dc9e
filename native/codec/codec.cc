// NativeCodec: streaming gzip inflate (ISA-L igzip) and zstd decompression
// and compression (libzstd), on the codec's own thread.
//
//   const c = new NativeCodec("gunzip" | "zstd-decompress" | "zstd-compress", level);
//   await c.transform(chunk)      -> { chunks, more }   // output of this input
//   await c.transform(undefined)  -> { chunks, more }   // no new input: go on with the last
//   await c.transform(null)       -> { chunks, more }   // end of input: flush, check the end
//
// A step stops once it has produced kMaxStepOutput bytes, whatever the
// input: a bomb (a 66 KB zstd frame of 2 GiB of zeros) comes out in steps
// of that size, never all at once. `more` says the step stopped there, with
// output still to come: the caller asks for it with transform(undefined)
// (or transform(null) again at the end) when it has room. Input a step did
// not get to is kept (copied) by the codec and consumed first next time.
//
// Steps run one after the other in call order and settle in that order, so
// a caller may queue the next input before the previous step is done: the
// codec then never waits for the JavaScript thread between steps (with one
// step at a time, inflate sat idle for whatever the event loop was busy
// with). gzip members may be concatenated; zstd frames too, and skippable
// frames are skipped by libzstd itself. `codecs` lists the kinds this build
// supports.
#include <memory>
#include <thread>
#include <vector>

#include "addon/common.h"
#include "addon/task_queue.h"

#ifdef STRATA_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif
#ifdef STRATA_HAVE_ZSTD
#include <zstd.h>
#endif

namespace strata {
namespace {

constexpr size_t kOutChunk = 1 << 20;
constexpr size_t kMaxStepOutput = 4 * kOutChunk;  // output of one step, at most (plus one chunk)

// An output buffer, allocated without zero-filling; handed to JS without a copy.
struct Chunk {
  explicit Chunk(size_t cap) : p(new uint8_t[cap]), size(cap) {}
  uint8_t* data() { return p.get(); }
  std::unique_ptr<uint8_t[]> p;
  size_t size;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Consumes `in` after whatever input an earlier step left (or only that,
  // with n == 0), and finishes when `end`. Stops once kMaxStepOutput bytes
  // are out; then *more is true and the input not consumed is kept.
  // Appends output chunks; returns an error text or "".
  std::string Step(const uint8_t* in, size_t n, bool end, std::vector<Chunk>& out, bool* more) {
    const uint8_t* p = in;
    size_t len = n;
    if (!left_.empty()) {
      left_.append(reinterpret_cast<const char*>(in), n);
      p = reinterpret_cast<const uint8_t*>(left_.data());
      len = left_.size();
    }
    size_t used = 0;
    *more = false;
    std::string err = Run(p, len, end, &used, out, more);
    if (!err.empty()) return err;
    std::string rest(reinterpret_cast<const char*>(p) + used, len - used);  // p may point into left_
    left_.swap(rest);
    if (end && !*more) return Finish();
    return "";
  }

 protected:
  // Consumes input from `in` (setting *used) until it is all used or the
  // output reached kMaxStepOutput (then *more = true).
  virtual std::string Run(const uint8_t* in, size_t n, bool end, size_t* used, std::vector<Chunk>& out,
                          bool* more) = 0;
  // The input has ended and everything is out: "" when the stream was complete.
  virtual std::string Finish() { return ""; }

 private:
  std::string left_;  // input a capped step did not consume
};

#ifdef STRATA_HAVE_ISAL
class Gunzip : public Engine {
 public:
  Gunzip() { Reset(); }

 protected:
  std::string Run(const uint8_t* in, size_t n, bool, size_t* used, std::vector<Chunk>& out, bool* more) override {
    st_.next_in = const_cast<uint8_t*>(in);
    st_.avail_in = static_cast<uint32_t>(n);
    size_t produced = 0;
    for (;;) {
      if (finished_) {
        if (st_.avail_in == 0) break;
        Reset();  // another gzip member follows
      }
      if (produced >= kMaxStepOutput) {
        *more = true;
        break;
      }
      Chunk buf(kOutChunk);
      st_.next_out = buf.data();
      st_.avail_out = kOutChunk;
      uint32_t inBefore = st_.avail_in;
      int r = isal_inflate(&st_);
      if (r < 0) return "invalid gzip data (isa-l error " + std::to_string(r) + ")";
      buf.size = kOutChunk - st_.avail_out;
      produced += buf.size;
      bool progressed = buf.size > 0 || st_.avail_in != inBefore;
      if (buf.size > 0) out.push_back(std::move(buf));
      if (st_.block_state == ISAL_BLOCK_FINISH) {
        finished_ = true;
        continue;
      }
      if (st_.avail_out > 0 && st_.avail_in == 0) break;  // wants more input
      if (!progressed) return "invalid gzip data (no progress)";
    }
    *used = n - st_.avail_in;
    return "";
  }

  std::string Finish() override { return finished_ ? "" : "unexpected end of gzip data"; }

 private:
  void Reset() {
    uint8_t* next = st_.next_in;
    uint32_t avail = st_.avail_in;
    isal_inflate_init(&st_);
    st_.crc_flag = ISAL_GZIP;
    st_.next_in = next;
    st_.avail_in = avail;
    finished_ = false;
  }
  struct inflate_state st_ = {};
  bool finished_ = false;
};
#endif

#ifdef STRATA_HAVE_ZSTD
class ZstdDecompress : public Engine {
 public:
  ZstdDecompress() : ctx_(ZSTD_createDCtx()) {}
  ~ZstdDecompress() override { ZSTD_freeDCtx(ctx_); }

 protected:
  std::string Run(const uint8_t* in, size_t n, bool, size_t* used, std::vector<Chunk>& out, bool* more) override {
    ZSTD_inBuffer ib = {in, n, 0};
    size_t produced = 0;
    // No input and nothing held back: nothing to do (a call would only ask
    // for the next frame's header and spoil last_).
    while (n > 0 || held_) {
      if (produced >= kMaxStepOutput) {
        *more = true;
        break;
      }
      Chunk buf(kOutChunk);
      ZSTD_outBuffer ob = {buf.data(), kOutChunk, 0};
      size_t r = ZSTD_decompressStream(ctx_, &ob, &ib);
      if (ZSTD_isError(r)) return std::string("invalid zstd data: ") + ZSTD_getErrorName(r);
      last_ = r;
      buf.size = ob.pos;
      produced += ob.pos;
      // A full output buffer may mean output is held inside, unless the frame just ended
      // (r == 0: calling again would start on a next frame that is not there).
      held_ = ob.pos == ob.size && r != 0;
      if (buf.size > 0) out.push_back(std::move(buf));
      if (ib.pos == ib.size && !held_) break;
    }
    *used = ib.pos;
    return "";
  }

  std::string Finish() override { return last_ == 0 ? "" : "unexpected end of zstd data"; }

 private:
  ZSTD_DCtx* ctx_;
  size_t last_ = 0;
  bool held_ = false;  // the last call filled its output: more may be inside
};

class ZstdCompress : public Engine {
 public:
  explicit ZstdCompress(int level) : ctx_(ZSTD_createCCtx()) {
    ZSTD_CCtx_setParameter(ctx_, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(ctx_, ZSTD_c_checksumFlag, 1);
  }
  ~ZstdCompress() override { ZSTD_freeCCtx(ctx_); }

 protected:
  std::string Run(const uint8_t* in, size_t n, bool end, size_t* used, std::vector<Chunk>& out, bool* more) override {
    ZSTD_inBuffer ib = {in, n, 0};
    ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
    size_t produced = 0;
    for (;;) {
      if (produced >= kMaxStepOutput) {
        *more = true;
        break;
      }
      Chunk buf(kOutChunk);
      ZSTD_outBuffer ob = {buf.data(), kOutChunk, 0};
      size_t r = ZSTD_compressStream2(ctx_, &ob, &ib, mode);
      if (ZSTD_isError(r)) return std::string("zstd compression failed: ") + ZSTD_getErrorName(r);
      buf.size = ob.pos;
      produced += ob.pos;
      if (buf.size > 0) out.push_back(std::move(buf));
      if (end ? r == 0 : ib.pos == ib.size) break;
    }
    *used = ib.pos;
    return "";
  }

 private:
  ZSTD_CCtx* ctx_;
};
#endif

// One queued step: its input (held until done) and, once run, its output or error.
struct Step {
  explicit Step(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise::Deferred deferred;
  Napi::ObjectReference ref;
  const uint8_t* data = nullptr;
  size_t len = 0;
  bool end = false;
  std::string error;
  std::vector<Chunk> out;
  bool more = false;
};

class NativeCodec : public Napi::ObjectWrap<NativeCodec> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeCodec", {InstanceMethod("transform", &NativeCodec::Transform)});
  }
  explicit NativeCodec(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeCodec>(info) {
    std::string kind = ArgString(info, 0, "kind");
    int level = static_cast<int>(ArgOptInt(info, 1, "level", 3));
#ifdef STRATA_HAVE_ISAL
    if (kind == "gunzip") engine_ = std::make_unique<Gunzip>();
#endif
#ifdef STRATA_HAVE_ZSTD
    if (kind == "zstd-decompress") engine_ = std::make_unique<ZstdDecompress>();
    if (kind == "zstd-compress") engine_ = std::make_unique<ZstdCompress>(level);
#endif
    if (!engine_) throw Napi::Error::New(info.Env(), "codec \"" + kind + "\" is not available in this build");
    // At environment teardown node may finalize the tsfn before this object: then it must not be released.
    auto gone = tsfnGone_;
    tsfn_ = Napi::ThreadSafeFunction::New(info.Env(), Napi::Function(), "strata-codec", 0, 1,
                                          [gone](Napi::Env) { *gone = true; });
    tsfn_.Unref(info.Env());  // referenced only while steps are queued (Transform / Settle)
    thread_ = std::thread([this] { Loop(); });
  }

  ~NativeCodec() override {
    Enqueue(nullptr);
    thread_.join();
    if (!*tsfnGone_) tsfn_.Release();
  }

 private:
  Napi::Value Transform(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() > 0 && !(info[0].IsBuffer() || info[0].IsNull() || info[0].IsUndefined()))
      throw Napi::TypeError::New(env, "Argument 0 (chunk) must be a Buffer, null or undefined");
    auto* step = new Step(env);
    if (info.Length() > 0 && info[0].IsBuffer()) {
      auto b = info[0].As<Napi::Buffer<uint8_t>>();
      step->data = b.Data();
      step->len = b.Length();
      step->ref = Napi::Persistent(b.As<Napi::Object>());
    } else {
      step->end = info.Length() > 0 && info[0].IsNull();
    }
    if (queued_++ == 0) tsfn_.Ref(env);  // a pending step keeps the process alive
    Napi::Promise p = step->deferred.Promise();
    Enqueue(step);
    return p;
  }

  void Enqueue(Step* step) { queue_.Push(step); }

  void Loop() {
    for (;;) {
      Step* step = queue_.Pop();
      if (!step) return;
      step->error = engine_->Step(step->data, step->len, step->end, step->out, &step->more);
      tsfn_.BlockingCall(step, [this](Napi::Env env, Napi::Function, Step* s) { Settle(env, s); });
    }
  }

  void Settle(Napi::Env env, Step* step) {
    if (--queued_ == 0) tsfn_.Unref(env);
    if (!step->error.empty()) {
      Napi::Error e = Napi::Error::New(env, step->error);
      e.Set("code", Napi::String::New(env, "ERR_DECOMPRESS"));
      step->deferred.Reject(e.Value());
    } else {
      Napi::Array arr = Napi::Array::New(env, step->out.size());
      for (size_t i = 0; i < step->out.size(); i++) {
        auto* chunk = new Chunk(std::move(step->out[i]));
        arr.Set(i, Napi::Buffer<uint8_t>::NewOrCopy(env, chunk->data(), chunk->size,
                                                     [](Napi::Env, uint8_t*, Chunk* c) { delete c; }, chunk));
      }
      Napi::Object r = Napi::Object::New(env);
      r.Set("chunks", arr);
      r.Set("more", Napi::Boolean::New(env, step->more));
      step->deferred.Resolve(r);
    }
    delete step;
  }

  std::unique_ptr<Engine> engine_;
  Napi::ThreadSafeFunction tsfn_;
  std::shared_ptr<bool> tsfnGone_ = std::make_shared<bool>(false);  // main thread only
  std::thread thread_;
  TaskQueue<Step> queue_;
  uint32_t queued_ = 0;  // steps not yet settled (main thread only)
};

}  // namespace

void InitCodec(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeCodec", NativeCodec::Define(env));
  Napi::Array kinds = Napi::Array::New(env);
  uint32_t i = 0;
#ifdef STRATA_HAVE_ISAL
  kinds.Set(i++, "gunzip");
#endif
#ifdef STRATA_HAVE_ZSTD
  kinds.Set(i++, "zstd-decompress");
  kinds.Set(i++, "zstd-compress");
#endif
  exports.Set("codecs", kinds);
}

}  // namespace strata
