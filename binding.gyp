{
  "targets": [
    {
      "target_name": "strata_native",
      "sources": [
        "native/common.cc",
        "native/fs.cc",
        "native/at.cc",
        "native/loop.cc",
        "native/scan.cc",
        "native/overlay.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags!": ["-fno-exceptions"]
    }
  ]
}
