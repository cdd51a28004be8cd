# check_layering_selftest.cmake: every forbidden direction of check_layering.cmake is caught.
# (cmake -DCHECK=<check_layering.cmake> -DSCRATCH=<dir> -P check_layering_selftest.cmake)
# For each case: a scratch tree holding a clean skeleton (one file per layer, each including a
# header of every layer below it: that must pass) plus one planted file; the check must fail for
# each forbidden include and pass for the allowed ones. A few hundred milliseconds.
cmake_minimum_required(VERSION 3.18)
if(NOT CHECK OR NOT SCRATCH)
  message(FATAL_ERROR "pass -DCHECK=<check_layering.cmake> -DSCRATCH=<scratch dir>")
endif()

# The clean skeleton: what each layer may include.
set(skeleton
  "src/common/a.h|#include <vector>"
  "device/a.h|#include \"src/common/a.h\""
  "device/cuda/b.h|#include <cuda_runtime.h>"
  "mpi/a.h|#include \"device/a.h\""
  "mpi/impl.h|#include <mpi.h>"
  "io/a.h|#include \"mpi/a.h\""
  "io/mpi_user.h|#include \"mpi/impl.h\""
  "io/h5.h|#include <hdf5.h>"
  "src/train/a.h|#include \"io/a.h\"\n#include \"src/common/a.h\""
  "src/train/free.h|#include \"mpi/a.h\""
  "src/cli/a.cpp|#include \"src/train/a.h\""
  "perf/a.cpp|#include \"src/cli/a.cpp\"\n#include \"src/train/a.h\"")

# name|planted file|its content|expected (fail or pass)
set(cases
  "io includes core|io/bad.h|#include \"src/train/free.h\"|fail"
  "io includes src/attention|io/bad.cpp|#include \"src/attention/layout.h\"|fail"
  "mpi includes core|mpi/bad.h|#include \"src/attention/ring_transport.h\"|fail"
  "mpi includes io|mpi/bad.cpp|#include \"io/a.h\"|fail"
  "device includes mpi|device/bad.cpp|#include \"mpi/a.h\"|fail"
  "device includes io|device/bad.h|#include \"io/a.h\"|fail"
  "device includes core|device/bad.h|#include \"src/train/free.h\"|fail"
  "common includes device|src/common/bad.h|#include \"device/a.h\"|fail"
  "common includes core|src/common/bad.h|#include \"src/train/free.h\"|fail"
  "core includes cli|src/train/bad.cpp|#include \"src/cli/a.cpp\"|fail"
  "core includes perf|src/model/bad.cpp|#include \"perf/a.cpp\"|fail"
  "core includes tests|src/model/bad.cpp|#include \"tests/test_support.h\"|fail"
  "cli includes perf|src/cli/bad.cpp|#include \"perf/a.cpp\"|fail"
  "perf includes tests|perf/bad.cpp|#include \"tests/test_support.h\"|fail"
  "core includes mpi.h|src/train/bad.cpp|#include <mpi.h>|fail"
  "core includes hdf5.h|src/data/bad.cpp|#include <hdf5.h>|fail"
  "core includes cuda_runtime.h|src/model/bad.cpp|#include <cuda_runtime.h>|fail"
  "core reaches mpi.h through mpi/|src/train/bad.cpp|#include \"mpi/impl.h\"|fail"
  "core reaches mpi.h through io/|src/train/bad.cpp|#include \"io/mpi_user.h\"|fail"
  "core reaches hdf5.h through io/|src/infer/bad.cpp|#include \"io/h5.h\"|fail"
  "mpi includes hdf5.h|mpi/bad.cpp|#include <hdf5.h>|fail"
  "mpi reaches cuda_runtime.h|mpi/bad.cpp|#include \"device/cuda/b.h\"|fail"
  "io includes common|io/ok.cpp|#include \"src/common/a.h\"|pass"
  "core includes io and mpi headers free of MPI|src/train/ok.cpp|#include \"src/train/free.h\"|pass"
  "tests include anything|tests/ok.cpp|#include \"src/cli/a.cpp\"\n#include <mpi.h>|pass")

set(failures 0)
set(index 0)
foreach(c ${cases})
  string(REPLACE "|" ";" parts "${c}")
  list(GET parts 0 name)
  list(GET parts 1 planted)
  list(GET parts 2 content)
  list(GET parts 3 expected)
  set(tree "${SCRATCH}/case${index}")
  math(EXPR index "${index} + 1")
  file(REMOVE_RECURSE "${tree}")
  foreach(entry ${skeleton})
    string(FIND "${entry}" "|" bar)
    string(SUBSTRING "${entry}" 0 ${bar} path)
    math(EXPR start "${bar} + 1")
    string(SUBSTRING "${entry}" ${start} -1 text)
    string(REPLACE "\\n" "\n" text "${text}")
    file(WRITE "${tree}/${path}" "${text}\n")
  endforeach()
  string(REPLACE "\\n" "\n" content "${content}")
  file(WRITE "${tree}/${planted}" "${content}\n")
  execute_process(COMMAND ${CMAKE_COMMAND} -DROOT=${tree} -P ${CHECK} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(expected STREQUAL "fail" AND rc EQUAL 0)
    message(SEND_ERROR "layering self-test: '${name}' (${planted}) was not caught")
    math(EXPR failures "${failures} + 1")
  elseif(expected STREQUAL "pass" AND NOT rc EQUAL 0)
    message(SEND_ERROR "layering self-test: '${name}' (${planted}) was refused but is allowed")
    math(EXPR failures "${failures} + 1")
  endif()
endforeach()
file(REMOVE_RECURSE "${SCRATCH}")
list(LENGTH cases n)
if(failures GREATER 0)
  message(FATAL_ERROR "layering self-test: ${failures} of ${n} cases wrong")
endif()
message(STATUS "layering self-test: ${n} cases right")
