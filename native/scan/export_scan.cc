// The native side of export, so that a tar of many small files costs a few
// thread-pool trips instead of several per entry:
//  - exportScan: given entries of one directory (a change list's siblings);
//  - ExportWalker: a whole tree depth first in byte order, in batches.
// Directories are reached from the layer root with openat2(RESOLVE_IN_ROOT)
// or, while walking, one name at a time with O_NOFOLLOW, so a container that
// swaps a directory for a symlink during the export cannot leak host files.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <mutex>

#include "scan/export_entry.h"

namespace strata {
namespace {

bool Vanished(int err) { return err == ENOENT || err == ENOTDIR || err == ELOOP; }

// exportScan(root, dir, names, opaque, inlineMax, inlineBudget) -> batch (see ExportBatchToJs)
Napi::Value ExportScan(const Napi::CallbackInfo& info) {
  int root = static_cast<int>(ArgInt(info, 0, "root"));
  std::string dir = ArgString(info, 1, "dir");
  if (info.Length() < 3 || !info[2].IsArray()) throw Napi::TypeError::New(info.Env(), "Argument 2 (names) must be an array");
  auto batch = std::make_shared<ExportBatch>();
  Napi::Array names = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < names.Length(); i++) {
    Napi::Value v = names.Get(i);
    if (!v.IsString()) throw Napi::TypeError::New(info.Env(), "names must be strings");
    batch->entries.emplace_back();
    batch->entries.back().name = v.As<Napi::String>().Utf8Value();
  }
  ExportOptions o = {info[3].ToBoolean().Value(), static_cast<size_t>(ArgInt(info, 4, "inlineMax"))};
  size_t budget = static_cast<size_t>(ArgInt(info, 5, "inlineBudget"));
  return RunAsync(
      info.Env(),
      [=](SysError& e) mutable {
        int fd = OpenDirInRoot(root, dir);
        if (fd < 0) {
          if (!Vanished(errno)) return Fail(e, "openat2", dir);
          batch->missing = true;  // removed or replaced while exporting: nothing to export
          batch->entries.clear();
          return true;
        }
        batch->stats.assign(batch->entries.size() * kExportFields, 0);
        for (size_t i = 0; i < batch->entries.size(); i++) {
          ExportEntry& ent = batch->entries[i];
          DescribeEntry(fd, ent.name, ent, &batch->stats[i * kExportFields], o, *batch->data, budget);
        }
        close(fd);
        return true;
      },
      [=](Napi::Env env) -> Napi::Value { return ExportBatchToJs(env, *batch); });
}

struct Frame {
  int fd;
  std::string rel;
  std::vector<ExportEntry> entries;
  size_t next = 0;
};

// A depth-first walk kept between next() calls: one open fd per level.
struct WalkState {
  std::mutex mu;  // one next() or close() at a time
  int root;
  ExportOptions opts;
  std::vector<Frame> stack;
  bool started = false;
  bool closed = false;

  ~WalkState() { CloseAll(); }

  void CloseAll() {
    for (Frame& f : stack) close(f.fd);
    stack.clear();
    closed = true;
  }

  bool Start(SysError& e) {
    started = true;
    int fd = OpenDirInRoot(root, "");
    if (fd < 0) return Fail(e, "openat2", ".");
    stack.push_back({fd, "", {}});
    return ListSorted(fd, ".", stack.back().entries, e);
  }

  // Appends entries to `out` until `maxEntries` or `maxBytes` of inlined content.
  bool Next(size_t maxEntries, size_t maxBytes, ExportBatch& out, SysError& e) {
    if (closed) {
      out.done = true;
      return true;
    }
    if (!started && !Start(e)) return false;
    // Every small file is inlined; the batch ends once `maxBytes` is reached (over by at most inlineMax).
    size_t budget = SIZE_MAX;
    while (!stack.empty() && out.entries.size() < maxEntries && out.data->size() < maxBytes) {
      Frame& top = stack.back();
      if (top.next == top.entries.size()) {
        close(top.fd);
        stack.pop_back();
        continue;
      }
      ExportEntry ent = std::move(top.entries[top.next++]);
      std::string base = std::move(ent.name);
      std::string rel = top.rel.empty() ? base : top.rel + "/" + base;
      int dirfd = top.fd;  // `top` may move when a frame is pushed below
      size_t at = out.stats.size();
      out.stats.resize(at + kExportFields);
      DescribeEntry(dirfd, base, ent, &out.stats[at], opts, *out.data, budget);
      double mode = out.stats[at];
      ent.name = rel;
      out.entries.push_back(std::move(ent));
      if (std::isnan(mode) || !S_ISDIR(static_cast<mode_t>(mode))) continue;
      int child = openat(dirfd, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) {
        if (Vanished(errno)) continue;  // removed or swapped since the lstat: its entry stands alone
        return Fail(e, "openat", rel);
      }
      stack.push_back({child, rel, {}});
      if (!ListSorted(child, rel, stack.back().entries, e)) return false;
    }
    out.done = stack.empty();
    return true;
  }
};

class ExportWalker : public Napi::ObjectWrap<ExportWalker> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ExportWalker",
                       {InstanceMethod("next", &ExportWalker::Next), InstanceMethod("close", &ExportWalker::Close)});
  }

  // new ExportWalker(root: number, opaque: boolean, inlineMax: number)
  explicit ExportWalker(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ExportWalker>(info) {
    state_ = std::make_shared<WalkState>();
    state_->root = static_cast<int>(ArgInt(info, 0, "root"));
    state_->opts = {info[1].ToBoolean().Value(), static_cast<size_t>(ArgInt(info, 2, "inlineMax"))};
  }

 private:
  // next(maxEntries, maxBytes) -> batch with names relative to the root, `done` at the end
  Napi::Value Next(const Napi::CallbackInfo& info) {
    size_t maxEntries = static_cast<size_t>(ArgInt(info, 0, "maxEntries"));
    size_t maxBytes = static_cast<size_t>(ArgInt(info, 1, "maxBytes"));
    auto state = state_;
    auto batch = std::make_shared<ExportBatch>();
    return RunAsync(
        info.Env(),
        [=](SysError& e) {
          std::lock_guard<std::mutex> lock(state->mu);
          return state->Next(maxEntries, maxBytes, *batch, e);
        },
        [=](Napi::Env env) -> Napi::Value { return ExportBatchToJs(env, *batch); });
  }

  // close(): closes the walk's directory fds (after a next() in flight).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    auto state = state_;
    return RunAsync(
        info.Env(),
        [=](SysError&) {
          std::lock_guard<std::mutex> lock(state->mu);
          state->CloseAll();
          return true;
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  std::shared_ptr<WalkState> state_;
};

}  // namespace

void InitExportScan(Napi::Env env, Napi::Object exports) {
  exports.Set("exportScan", Napi::Function::New(env, ExportScan));
  exports.Set("ExportWalker", ExportWalker::Define(env));
}

}  // namespace strata
