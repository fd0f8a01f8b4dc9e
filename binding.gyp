{
  "variables": {
    "have_isal": "<!(test -f /usr/include/isa-l/igzip_lib.h && echo 1 || echo 0)",
    "have_zstd": "<!(test -f /usr/include/zstd.h && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "strata_native",
      "sources": [
        "native/common.cc",
        "native/fs.cc",
        "native/at.cc",
        "native/loop.cc",
        "native/scan.cc",
        "native/export_scan.cc",
        "native/export_entry.cc",
        "native/dir_at.cc",
        "native/apply.cc",
        "native/apply_fs.cc",
        "native/apply_pool.cc",
        "native/tar_header.cc",
        "native/tar_apply.cc",
        "native/codec.cc",
        "native/overlay.cc",
        "native/remove_tree.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags!": ["-fno-exceptions"],
      "libraries": ["-pthread"],
      "conditions": [
        ["have_isal==1", { "defines": ["STRATA_HAVE_ISAL"], "libraries": ["-lisal"] }],
        ["have_zstd==1", { "defines": ["STRATA_HAVE_ZSTD"], "libraries": ["-lzstd"] }]
      ]
    }
  ]
}
