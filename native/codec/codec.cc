// NativeCodec: streaming gzip inflate (ISA-L igzip) and zstd decompression
// and compression (libzstd), on the codec's own thread.
//
//   const c = new NativeCodec("gunzip" | "zstd-decompress" | "zstd-compress", level);
//   await c.transform(chunk)  -> Buffer[]   // output produced by this input
//   await c.transform(null)   -> Buffer[]   // end of input: flush, check the end
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
  // Consumes `in` (or finishes when null); appends output chunks. Returns an error text or "".
  virtual std::string Step(const uint8_t* in, size_t n, bool end, std::vector<Chunk>& out) = 0;
};

#ifdef STRATA_HAVE_ISAL
class Gunzip : public Engine {
 public:
  Gunzip() { Reset(); }
  std::string Step(const uint8_t* in, size_t n, bool end, std::vector<Chunk>& out) override {
    st_.next_in = const_cast<uint8_t*>(in);
    st_.avail_in = static_cast<uint32_t>(n);
    for (;;) {
      if (finished_) {
        if (st_.avail_in == 0) break;
        Reset();  // another gzip member follows
      }
      Chunk buf(kOutChunk);
      st_.next_out = buf.data();
      st_.avail_out = kOutChunk;
      uint32_t inBefore = st_.avail_in;
      int r = isal_inflate(&st_);
      if (r < 0) return "invalid gzip data (isa-l error " + std::to_string(r) + ")";
      buf.size = kOutChunk - st_.avail_out;
      bool progressed = buf.size > 0 || st_.avail_in != inBefore;
      if (buf.size > 0) out.push_back(std::move(buf));
      if (st_.block_state == ISAL_BLOCK_FINISH) {
        finished_ = true;
        continue;
      }
      if (st_.avail_out > 0 && st_.avail_in == 0) break;  // wants more input
      if (!progressed) return "invalid gzip data (no progress)";
    }
    if (end && !finished_) return "unexpected end of gzip data";
    return "";
  }

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
  std::string Step(const uint8_t* in, size_t n, bool end, std::vector<Chunk>& out) override {
    ZSTD_inBuffer ib = {in, n, 0};
    // No input: nothing to do (output is drained while it fills); a call
    // would only ask for the next frame's header and spoil last_.
    for (; n > 0;) {
      Chunk buf(kOutChunk);
      ZSTD_outBuffer ob = {buf.data(), kOutChunk, 0};
      size_t r = ZSTD_decompressStream(ctx_, &ob, &ib);
      if (ZSTD_isError(r)) return std::string("invalid zstd data: ") + ZSTD_getErrorName(r);
      last_ = r;
      buf.size = ob.pos;
      bool full = ob.pos == ob.size;
      if (buf.size > 0) out.push_back(std::move(buf));
      if (ib.pos == ib.size && !full) break;
    }
    if (end && last_ != 0) return "unexpected end of zstd data";
    return "";
  }

 private:
  ZSTD_DCtx* ctx_;
  size_t last_ = 0;
};

class ZstdCompress : public Engine {
 public:
  explicit ZstdCompress(int level) : ctx_(ZSTD_createCCtx()) {
    ZSTD_CCtx_setParameter(ctx_, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(ctx_, ZSTD_c_checksumFlag, 1);
  }
  ~ZstdCompress() override { ZSTD_freeCCtx(ctx_); }
  std::string Step(const uint8_t* in, size_t n, bool end, std::vector<Chunk>& out) override {
    ZSTD_inBuffer ib = {in, n, 0};
    ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
      Chunk buf(kOutChunk);
      ZSTD_outBuffer ob = {buf.data(), kOutChunk, 0};
      size_t r = ZSTD_compressStream2(ctx_, &ob, &ib, mode);
      if (ZSTD_isError(r)) return std::string("zstd compression failed: ") + ZSTD_getErrorName(r);
      buf.size = ob.pos;
      if (buf.size > 0) out.push_back(std::move(buf));
      if (end ? r == 0 : ib.pos == ib.size) break;
    }
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
    if (info.Length() < 1 || !(info[0].IsBuffer() || info[0].IsNull()))
      throw Napi::TypeError::New(env, "Argument 0 (chunk) must be a Buffer or null");
    auto* step = new Step(env);
    if (info[0].IsBuffer()) {
      auto b = info[0].As<Napi::Buffer<uint8_t>>();
      step->data = b.Data();
      step->len = b.Length();
      step->ref = Napi::Persistent(b.As<Napi::Object>());
    } else {
      step->end = true;
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
      step->error = engine_->Step(step->data, step->len, step->end, step->out);
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
      step->deferred.Resolve(arr);
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
