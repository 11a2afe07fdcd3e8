#!/bin/bash -eu
# .clusterfuzzlite/build.sh: ClusterFuzzLite runs this in its build image ($SRC, $OUT, $CC,
# $CFLAGS, $LIB_FUZZING_ENGINE set by it): the project's own OSS-Fuzz build script does the work.
exec "$SRC/mappedpages/fuzz/build.sh"
