// NativeCodec: streaming gzip inflate (ISA-L igzip) and zstd decompression
// and compression (libzstd), each step on the libuv thread pool.
//
//   const c = new NativeCodec("gunzip" | "zstd-decompress" | "zstd-compress", level);
//   await c.transform(chunk)  -> Buffer[]   // output produced by this input
//   await c.transform(null)   -> Buffer[]   // end of input: flush, check the end
//
// Calls must not overlap (the stream wrapper serializes them). gzip members
// may be concatenated; zstd frames too, and skippable frames are skipped by
// libzstd itself. `codecs` lists the kinds this build supports.
#include <memory>
#include <vector>

#include "common.h"

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

class StepWorker : public Napi::AsyncWorker {
 public:
  StepWorker(Napi::Env env, std::shared_ptr<Engine> engine, Napi::Value input)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), engine_(std::move(engine)) {
    if (input.IsBuffer()) {
      auto b = input.As<Napi::Buffer<uint8_t>>();
      data_ = b.Data();
      len_ = b.Length();
      ref_ = Napi::Persistent(b.As<Napi::Object>());
    } else {
      end_ = true;
    }
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { error_ = engine_->Step(data_, len_, end_, out_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (!error_.empty()) {
      Napi::Error e = Napi::Error::New(env, error_);
      e.Set("code", Napi::String::New(env, "ERR_DECOMPRESS"));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Array arr = Napi::Array::New(env, out_.size());
    for (size_t i = 0; i < out_.size(); i++) {
      auto* chunk = new Chunk(std::move(out_[i]));
      arr.Set(i, Napi::Buffer<uint8_t>::NewOrCopy(env, chunk->data(), chunk->size,
                                                   [](Napi::Env, uint8_t*, Chunk* c) { delete c; }, chunk));
    }
    deferred_.Resolve(arr);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Engine> engine_;
  Napi::ObjectReference ref_;
  const uint8_t* data_ = nullptr;
  size_t len_ = 0;
  bool end_ = false;
  std::string error_;
  std::vector<Chunk> out_;
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
    if (kind == "gunzip") engine_ = std::make_shared<Gunzip>();
#endif
#ifdef STRATA_HAVE_ZSTD
    if (kind == "zstd-decompress") engine_ = std::make_shared<ZstdDecompress>();
    if (kind == "zstd-compress") engine_ = std::make_shared<ZstdCompress>(level);
#endif
    if (!engine_) throw Napi::Error::New(info.Env(), "codec \"" + kind + "\" is not available in this build");
  }

 private:
  Napi::Value Transform(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !(info[0].IsBuffer() || info[0].IsNull()))
      throw Napi::TypeError::New(info.Env(), "Argument 0 (chunk) must be a Buffer or null");
    auto* w = new StepWorker(info.Env(), engine_, info[0]);
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }
  std::shared_ptr<Engine> engine_;
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
