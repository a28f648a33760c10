{
  "targets": [
    {
      "target_name": "kairo_hw",
      "sources": ["src/kairo_hw.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
