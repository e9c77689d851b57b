{
  "targets": [
    {
      "target_name": "saslgate_krb5",
      "sources": ["src/addon.cc", "src/session.cc", "src/keytab_pool.cc", "src/secret.cc", "src/hardening.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lkrb5", "-lk5crypto", "-lcom_err"]
    }
  ]
}
