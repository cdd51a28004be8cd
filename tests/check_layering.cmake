# check_layering.cmake: the layers' include rules (cmake -DROOT=<source tree> -P check_layering.cmake;
# exits non-zero, naming every offending file and include, on any violation). It runs as part of
# every build (target ringworld_layering) and as the ctest `layering`; `layering_selftest` plants one
# violation of each rule in a scratch tree and checks that each one is caught.
#
# Layers, bottom up (architecture.md): common (src/common) <- device <- mpi <- io <- core (src/
# attention, model, data, infer, train, plan, bench) <- cli (src/cli), perf; tests above all.
# Quoted includes of our own headers may point only down (or within the layer):
#   src/common  src/common
#   device      device, src/common
#   mpi         mpi, device, src/common
#   io          io, mpi, device, src/common           (io/ never includes core: it takes views)
#   core        core, io, mpi, device, src/common     (not src/cli, perf, tests)
#   src/cli     src/, io, mpi, device                 (not perf, tests)
#   perf        src/, io, mpi, device, perf           (not tests)
# System headers: <mpi.h> only in mpi/ and io/ (and tests); <hdf5.h> only in io/ (and tests);
# <cuda_runtime.h> only in device/ (and tests). "Includes" is transitive through our headers: a
# core file may not include an mpi/ or io/ header that itself reaches <mpi.h> or <hdf5.h>.
cmake_minimum_required(VERSION 3.18)  # IN_LIST, continue()
if(NOT ROOT)
  message(FATAL_ERROR "check_layering.cmake: pass -DROOT=<source tree>")
endif()

set(layer_dirs src device mpi io perf)
set(files "")
foreach(d ${layer_dirs})
  if(EXISTS "${ROOT}/${d}")
    file(GLOB_RECURSE found "${ROOT}/${d}/*.h" "${ROOT}/${d}/*.hpp" "${ROOT}/${d}/*.cpp" "${ROOT}/${d}/*.cu" "${ROOT}/${d}/*.cuh")
    list(APPEND files ${found})
  endif()
endforeach()

# The layer of a path relative to ROOT.
function(layer_of rel out)
  if(rel MATCHES "^src/common/")
    set(l common)
  elseif(rel MATCHES "^src/cli/")
    set(l cli)
  elseif(rel MATCHES "^src/")
    set(l core)
  elseif(rel MATCHES "^(device|mpi|io|perf|tests)/")
    set(l ${CMAKE_MATCH_1})
  else()
    set(l other)
  endif()
  set(${out} ${l} PARENT_SCOPE)
endfunction()

# Layers each layer may include (quoted includes of our headers).
set(allowed_common common)
set(allowed_device device common)
set(allowed_mpi mpi device common)
set(allowed_io io mpi device common)
set(allowed_core core io mpi device common)
set(allowed_cli cli core io mpi device common)
set(allowed_perf perf cli core io mpi device common)
# System headers each layer may reach (directly or through our headers).
set(system_mpi mpi io)
set(system_hdf5 io)
set(system_cuda device)
set(name_mpi mpi.h)
set(name_hdf5 hdf5.h)
set(name_cuda cuda_runtime.h)

set(bad 0)
# Pass 1: direct includes; which of our headers reach which system header directly.
set(reach_mpi "")
set(reach_hdf5 "")
set(reach_cuda "")
foreach(f ${files})
  file(RELATIVE_PATH rel "${ROOT}" "${f}")
  layer_of("${rel}" layer)
  file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include")
  set(deps_${rel} "")
  foreach(line ${lines})
    if(line MATCHES "\"(((src/[a-z_]+)|device|mpi|io|perf|tests)/[^\"]*)\"")
      set(target "${CMAKE_MATCH_1}")
      layer_of("${target}" target_layer)
      list(APPEND deps_${rel} "${target}")
      if(NOT target_layer IN_LIST allowed_${layer})
        message(SEND_ERROR "layering: ${rel} (${layer}) includes ${target} (${target_layer}): ${layer} may include only ${allowed_${layer}}")
        set(bad 1)
      endif()
    elseif(line MATCHES "<(mpi\\.h|hdf5\\.h|cuda_runtime\\.h)>")
      if(CMAKE_MATCH_1 STREQUAL "mpi.h")
        list(APPEND reach_mpi "${rel}")
      elseif(CMAKE_MATCH_1 STREQUAL "hdf5.h")
        list(APPEND reach_hdf5 "${rel}")
      else()
        list(APPEND reach_cuda "${rel}")
      endif()
    endif()
  endforeach()
  list(APPEND all_rel "${rel}")
endforeach()

# Pass 2: close "reaches" over our includes (a fixpoint: at most one round per include depth).
foreach(sys mpi hdf5 cuda)
  set(changed TRUE)
  while(changed)
    set(changed FALSE)
    foreach(rel ${all_rel})
      if(rel IN_LIST reach_${sys})
        continue()
      endif()
      foreach(dep ${deps_${rel}})
        if(dep IN_LIST reach_${sys})
          list(APPEND reach_${sys} "${rel}")
          set(changed TRUE)
          break()
        endif()
      endforeach()
    endforeach()
  endwhile()
  foreach(rel ${reach_${sys}})
    layer_of("${rel}" layer)
    if(NOT layer IN_LIST system_${sys})
      message(SEND_ERROR "layering: ${rel} (${layer}) reaches <${name_${sys}}> (directly or through our headers); only ${system_${sys}} may")
      set(bad 1)
    endif()
  endforeach()
endforeach()

list(LENGTH files n)
if(bad)
  message(FATAL_ERROR "layering: forbidden includes above (see tests/check_layering.cmake for the rules)")
endif()
message(STATUS "layering: ${n} files under src/, device/, mpi/, io/, perf/ checked")
