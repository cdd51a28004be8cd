# gpu_tests.cmake: the tests of the GPU kernels and backends (device/cuda/README.md), included by
# tests/CMakeLists.txt.
#
#   gpu_emu            the SIMT emulation itself (test_simt_emu.cpp); about 2 s
#   device_gpu_emu     the backend conformance and stream tests on cuda-emu (warp 32) and hip-emu
#                      (warp 64): every GPU kernel against the fp64 reference, fp32 and bf16
#   gpu_cuda, gpu_hip  the same on the real backends; skipped (77, one line) without a device
#   gpu_cuda_resources, gpu_hip_resources
#                      compile-only: ptxas / AMDGPU resource reports of every kernel, no spills

if(RINGWORLD_HAVE_GPU_EMU)
  foreach(warp 32 64)
    add_library(emu_test_kernels_w${warp} OBJECT gpu/emu_test_kernels.cpp)
    target_include_directories(emu_test_kernels_w${warp} PRIVATE ${PROJECT_SOURCE_DIR})
    target_compile_definitions(emu_test_kernels_w${warp} PRIVATE RW_SIMT_EMU=1 RW_SIMT_EMU_WARP=${warp}
                               RW_GPU_NS=emu_w${warp})
    target_compile_options(emu_test_kernels_w${warp} PRIVATE ${RINGWORLD_CXX_WARNINGS} -Werror)
  endforeach()
  add_executable(test_gpu_emu gpu/test_simt_emu.cpp $<TARGET_OBJECTS:emu_test_kernels_w32>
                 $<TARGET_OBJECTS:emu_test_kernels_w64> $<TARGET_OBJECTS:catch_main>)
  target_link_libraries(test_gpu_emu PRIVATE ringworld_device Catch2::Catch2)
  add_test(NAME gpu_emu COMMAND test_gpu_emu --use-colour no)
  set_tests_properties(gpu_emu PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

  add_test(NAME device_gpu_emu COMMAND test_device "[conformance],[streams]~[sim-gpu]" --use-colour no)
  set_tests_properties(device_gpu_emu PROPERTIES TIMEOUT 600
                       ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;RINGWORLD_SIM_GPU_DELAY_US=200;RINGWORLD_TEST_BACKENDS=cuda-emu,hip-emu")
endif()

foreach(vendor cuda hip)
  string(TOUPPER ${vendor} VENDOR)
  if(RINGWORLD_${VENDOR})
    add_executable(test_gpu_${vendor} gpu/gpu_test_main.cpp unit/test_backend_conformance.cpp
                   unit/test_backend_streams.cpp)
    target_compile_definitions(test_gpu_${vendor} PRIVATE RW_GPU_TEST_BACKEND="${vendor}")
    target_link_libraries(test_gpu_${vendor} PRIVATE ringworld_device Catch2::Catch2)
    add_test(NAME gpu_${vendor} COMMAND test_gpu_${vendor} "[conformance],[streams]~[sim-gpu]" --use-colour no)
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
                   -DROOT=${PROJECT_SOURCE_DIR} -DWORK=${CMAKE_CURRENT_BINARY_DIR}/gpu_resources
                   -P ${PROJECT_SOURCE_DIR}/device/cuda/check_resources.cmake)
  set_tests_properties(gpu_cuda_resources PROPERTIES TIMEOUT 900 LABELS gpu)
endif()
if(RINGWORLD_HIP)
  list(GET RINGWORLD_HIP_ARCHITECTURES 0 rw_check_arch)
  add_test(NAME gpu_hip_resources
           COMMAND ${CMAKE_COMMAND} -DKIND=hip -DCOMPILER=${RINGWORLD_HIPCC} -DARCH=${rw_check_arch}
                   -DROOT=${PROJECT_SOURCE_DIR} -DWORK=${CMAKE_CURRENT_BINARY_DIR}/gpu_resources
                   -P ${PROJECT_SOURCE_DIR}/device/cuda/check_resources.cmake)
  set_tests_properties(gpu_hip_resources PROPERTIES TIMEOUT 900 LABELS gpu)
endif()
