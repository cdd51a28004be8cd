# gpu_tests.cmake: the tests of the GPU kernels and backends (device/cuda/README.md), included by
# tests/CMakeLists.txt.
#
#   gpu_emu            the SIMT emulation itself (test_simt_emu.cpp), the matrix-core tile wrapper
#                      and the fused attention forward and backward on cuda-emu / hip-emu; a few seconds
#   device_gpu_emu     the backend conformance, stream and VQGAN kernel tests on cuda-emu (warp 32)
#                      and hip-emu (warp 64): every GPU kernel against the fp64 reference, fp32 and bf16
#   gpu_cuda, gpu_hip  the same on the real backends; skipped (77, one line) without a device
#   gpu_cuda_resources, gpu_hip_resources
#                      compile-only: ptxas / AMDGPU resource reports of every kernel, no spills

if(RINGWORLD_HAVE_GPU_EMU)
  foreach(warp 32 64)
    add_library(emu_test_kernels_w${warp} OBJECT ${CMAKE_CURRENT_LIST_DIR}/emu_test_kernels.cpp)
    target_include_directories(emu_test_kernels_w${warp} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../..)
    target_compile_definitions(emu_test_kernels_w${warp} PRIVATE RW_SIMT_EMU=1 RW_SIMT_EMU_WARP=${warp}
                               RW_GPU_NS=emu_w${warp})
    target_compile_options(emu_test_kernels_w${warp} PRIVATE ${RINGWORLD_CXX_WARNINGS} -Werror)
  endforeach()
  add_executable(test_gpu_emu ${CMAKE_CURRENT_LIST_DIR}/test_simt_emu.cpp ${CMAKE_CURRENT_LIST_DIR}/test_fused_attention.cpp
                 ${CMAKE_CURRENT_LIST_DIR}/test_fused_attention_bwd.cpp
                 $<TARGET_OBJECTS:emu_test_kernels_w32> $<TARGET_OBJECTS:emu_test_kernels_w64> $<TARGET_OBJECTS:catch_main>)
  target_link_libraries(test_gpu_emu PRIVATE ringworld_device Catch2::Catch2)
  target_compile_definitions(test_gpu_emu PRIVATE RW_TEST_HAVE_SIMT_EMU=1)
  add_test(NAME gpu_emu COMMAND test_gpu_emu --use-colour no)
  set_tests_properties(gpu_emu PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

  add_test(NAME device_gpu_emu COMMAND test_device "[conformance],[streams]~[sim-gpu],[vision]" --use-colour no)
  set_tests_properties(device_gpu_emu PROPERTIES TIMEOUT 600
                       ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;RINGWORLD_SIM_GPU_DELAY_US=200;RINGWORLD_TEST_BACKENDS=cuda-emu,hip-emu")
endif()

foreach(vendor cuda hip)
  string(TOUPPER ${vendor} VENDOR)
  if(RINGWORLD_${VENDOR})
    add_executable(test_gpu_${vendor} ${CMAKE_CURRENT_LIST_DIR}/gpu_test_main.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/../unit/test_backend_conformance.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/../unit/test_backend_streams.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/../unit/test_vision_kernels.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/test_mma_gpu.cpp ${CMAKE_CURRENT_LIST_DIR}/test_fused_attention.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/test_fused_attention_bwd.cpp)
    if(vendor STREQUAL "cuda")
      set(rw_test_warp 32)
    else()
      set(rw_test_warp 64)
    endif()
    target_compile_definitions(test_gpu_${vendor} PRIVATE RW_GPU_TEST_BACKEND="${vendor}" RW_GPU_TEST_NS=${vendor}
                               RW_GPU_TEST_WARP=${rw_test_warp})
    target_include_directories(test_gpu_${vendor} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../..)
    target_link_libraries(test_gpu_${vendor} PRIVATE ringworld_device Catch2::Catch2)
    # The matrix-core tile wrapper's test kernel, compiled by the vendor's toolchain.
    if(vendor STREQUAL "cuda")
      target_sources(test_gpu_cuda PRIVATE ${CMAKE_CURRENT_LIST_DIR}/mma_test_kernels.cu)
      set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/mma_test_kernels.cu PROPERTIES
        COMPILE_DEFINITIONS "RW_GPU_CUDA=1;RW_GPU_NS=cuda;RW_GPU_HAVE_BLAS=1"
        COMPILE_OPTIONS "-Werror=all-warnings")
      target_link_libraries(test_gpu_cuda PRIVATE CUDA::cudart)
    else()
      set(rw_hip_test_object ${CMAKE_CURRENT_BINARY_DIR}/gpu_hip/mma_test_kernels.o)
      set(rw_hip_test_flags -x hip -std=c++17 -O3 -Wall -Wextra -Wno-unused-parameter -Werror -DRW_GPU_HIP=1
          -DRW_GPU_NS=hip -DRW_GPU_HAVE_BLAS=0 -I${CMAKE_CURRENT_LIST_DIR}/../..)
      foreach(arch ${RINGWORLD_HIP_ARCHITECTURES})
        list(APPEND rw_hip_test_flags --offload-arch=${arch})
      endforeach()
      add_custom_command(OUTPUT ${rw_hip_test_object}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/gpu_hip
        COMMAND ${RINGWORLD_HIPCC} ${rw_hip_test_flags} -c ${CMAKE_CURRENT_LIST_DIR}/mma_test_kernels.cu
                -o ${rw_hip_test_object}
        DEPENDS ${CMAKE_CURRENT_LIST_DIR}/mma_test_kernels.cu ${CMAKE_CURRENT_LIST_DIR}/mma_test_kernels.cuh
                ${CMAKE_CURRENT_LIST_DIR}/../../device/cuda/mma.h ${CMAKE_CURRENT_LIST_DIR}/../../device/cuda/simt.h
        COMMENT "hipcc tests/gpu/mma_test_kernels.cu" VERBATIM)
      set_source_files_properties(${rw_hip_test_object} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
      target_sources(test_gpu_hip PRIVATE ${rw_hip_test_object})
    endif()
    add_test(NAME gpu_${vendor} COMMAND test_gpu_${vendor} "[conformance],[streams]~[sim-gpu],[vision]" --use-colour no)
    set_tests_properties(gpu_${vendor} PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS gpu)
  endif()
endforeach()

if(RINGWORLD_CUDA)
  # One architecture: 90 when built, else the first of the list.
  set(rw_check_arch 90)
  if(NOT "90" IN_LIST CMAKE_CUDA_ARCHITECTURES)
    list(GET CMAKE_CUDA_ARCHITECTURES 0 rw_check_arch)
  endif()
  add_test(NAME gpu_cuda_resources
           COMMAND ${CMAKE_COMMAND} -DKIND=cuda -DCOMPILER=${CMAKE_CUDA_COMPILER} -DARCH=${rw_check_arch}
                   -DROOT=${CMAKE_CURRENT_LIST_DIR}/../.. -DWORK=${CMAKE_CURRENT_BINARY_DIR}/gpu_resources
                   -P ${CMAKE_CURRENT_LIST_DIR}/../../device/cuda/check_resources.cmake)
  set_tests_properties(gpu_cuda_resources PROPERTIES TIMEOUT 900 LABELS gpu)
endif()
if(RINGWORLD_HIP)
  list(GET RINGWORLD_HIP_ARCHITECTURES 0 rw_check_arch)
  add_test(NAME gpu_hip_resources
           COMMAND ${CMAKE_COMMAND} -DKIND=hip -DCOMPILER=${RINGWORLD_HIPCC} -DARCH=${rw_check_arch}
                   -DROOT=${CMAKE_CURRENT_LIST_DIR}/../.. -DWORK=${CMAKE_CURRENT_BINARY_DIR}/gpu_resources
                   -P ${CMAKE_CURRENT_LIST_DIR}/../../device/cuda/check_resources.cmake)
  set_tests_properties(gpu_hip_resources PROPERTIES TIMEOUT 900 LABELS gpu)
endif()

# The GPU benchmark's smoke test: every case of perf/gpu/check.sh's benchmark at tiny sizes on
# the emulated backend, its sampled checks against fp64 included (exit 1 on a wrong value). ~1 s.
if(RINGWORLD_HAVE_GPU_EMU AND TARGET gpu_bench)
  add_test(NAME gpu_bench_smoke COMMAND gpu_bench --backend cuda-emu --quick)
  set_tests_properties(gpu_bench_smoke PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
endif()

# perf/gpu/check.sh step 5's benchmarks (training step, ring of in-process ranks) at tiny sizes
# on sim-gpu (with random delays), the ring on cpu's direct path and on cuda-emu: their own checks
# and their JSON (perf/gpu/check_step5_smoke.cmake). ~2 s.
if(TARGET gpu_train_bench AND TARGET gpu_ring_bench)
  add_test(NAME gpu_step5_smoke
           COMMAND ${CMAKE_COMMAND} -DTRAIN=$<TARGET_FILE:gpu_train_bench> -DRING=$<TARGET_FILE:gpu_ring_bench>
                   -DWORK=${CMAKE_CURRENT_BINARY_DIR}/gpu_step5_smoke -DEMU=${RINGWORLD_HAVE_GPU_EMU}
                   -P ${CMAKE_CURRENT_LIST_DIR}/../../perf/gpu/check_step5_smoke.cmake)
  set_tests_properties(gpu_step5_smoke PROPERTIES TIMEOUT 300
                       ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1;RINGWORLD_SIM_GPU_DELAY_US=50")
endif()
