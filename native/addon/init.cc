// The addon's entry point: every folder registers its functions here.
#include "addon/common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  strata::InitFs(env, exports);
  strata::InitAt(env, exports);
  strata::InitLoop(env, exports);
  strata::InitScan(env, exports);
  strata::InitExportScan(env, exports);
  strata::InitApply(env, exports);
  strata::InitTarIndex(env, exports);
  strata::InitCodec(env, exports);
  strata::InitOverlay(env, exports);
  strata::InitRemoveTree(env, exports);
  return exports;
}

NODE_API_MODULE(strata_native, Init)
