{
  "variables": {
    "have_isal": "<!(test -f /usr/include/isa-l/igzip_lib.h && echo 1 || echo 0)",
    "have_zstd": "<!(test -f /usr/include/zstd.h && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "strata_native",
      "sources": [
        "native/addon/init.cc",
        "native/addon/common.cc",
        "native/sys/fs.cc",
        "native/sys/at.cc",
        "native/sys/loop.cc",
        "native/scan/scan.cc",
        "native/scan/export_scan.cc",
        "native/scan/export_entry.cc",
        "native/sys/dir_at.cc",
        "native/apply/apply.cc",
        "native/apply/apply_fs.cc",
        "native/apply/apply_pool.cc",
        "native/archive/tar_header.cc",
        "native/archive/tar_index.cc",
        "native/apply/tar_apply.cc",
        "native/codec/codec.cc",
        "native/sys/overlay.cc",
        "native/sys/remove_tree.cc"
      ],
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags!": ["-fno-exceptions"],
      "libraries": ["-pthread"],
      "conditions": [
        ["have_isal==1", { "defines": ["STRATA_HAVE_ISAL"], "libraries": ["-lisal"] }],
        ["have_zstd==1", { "defines": ["STRATA_HAVE_ZSTD"], "libraries": ["-lzstd"] }]
      ]
    },
    {
      "target_name": "strata_test_native",
      "sources": [
        "test/native/batch_apply.cc",
        "native/addon/common.cc",
        "native/sys/dir_at.cc",
        "native/apply/apply_fs.cc",
        "native/apply/apply_pool.cc"
      ],
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags!": ["-fno-exceptions"],
      "libraries": ["-pthread"]
    }
  ]
}
