"""lzq benchmarks: stand-alone scripts (see README.md); a package so daemons can `--app benchmarks.noop`."""
