{
  "targets": [
    {
      "target_name": "distrun_spawn",
      "sources": ["native/spawn.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
