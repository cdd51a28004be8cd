# check_step5_smoke.cmake: the smoke test of perf/gpu/check.sh step 5 (ctest gpu_step5_smoke):
# gpu_train_bench and gpu_ring_bench at --quick sizes on sim-gpu (kernels on worker threads,
# device memory the host cannot touch, random delays when RINGWORLD_SIM_GPU_DELAY_US is set),
# the ring also on cpu over the direct path and, with -DEMU=ON, on cuda-emu (the GPU kernels under
# the SIMT emulation); each must exit 0 (their own checks: the tiny model
# against fp64 and the loss at initialisation; the ring bit for bit against the compute-only
# run) and write JSON that parses with the fields check.sh's summary reads.
#   cmake -DTRAIN=<gpu_train_bench> -DRING=<gpu_ring_bench> -DWORK=<dir> [-DEMU=ON] -P check_step5_smoke.cmake
cmake_minimum_required(VERSION 3.19)  # string(JSON)
file(MAKE_DIRECTORY ${WORK})

function(run_bench name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: exit ${rc}")
  endif()
endfunction()

# Reads the JSON file, checks it has `rows` rows and that each row has the given numeric fields.
function(check_json file rows)
  file(READ ${file} text)
  string(JSON n ERROR_VARIABLE bad LENGTH "${text}" rows)
  if(bad)
    message(FATAL_ERROR "${file}: not the expected JSON: ${bad}")
  endif()
  if(NOT n EQUAL rows)
    message(FATAL_ERROR "${file}: ${n} rows, expected ${rows}")
  endif()
  math(EXPR last "${n} - 1")
  foreach(i RANGE ${last})
    foreach(field ${ARGN})
      string(JSON value ERROR_VARIABLE bad GET "${text}" rows ${i} ${field})
      if(bad OR NOT value MATCHES "^-?[0-9.]+([eE][-+]?[0-9]+)?$")
        message(FATAL_ERROR "${file}: row ${i} field ${field}: '${value}' ${bad}")
      endif()
    endforeach()
  endforeach()
endfunction()

run_bench(gpu_train_bench ${TRAIN} --backend sim-gpu --precision bf16 --quick --json ${WORK}/train.json)
check_json(${WORK}/train.json 2 tokens median_ms tokens_per_s tflops mfu first_loss)
file(READ ${WORK}/train.json text)
string(JSON check GET "${text}" reference_check ok)
if(NOT check STREQUAL "ON" AND NOT check STREQUAL "true")
  message(FATAL_ERROR "train.json: reference_check.ok is '${check}'")
endif()
# The FLOP count, recomputed here from the model's shape: 6 N_gemm T + 12 L T^2 d_model / 2, with
# N_gemm = L (2 h^2 + 2 h kv + 3 h f) + h V (gemm_train_bench.cpp's header says why).
foreach(field layers hidden intermediate heads kv_heads vocab)
  string(JSON ${field} GET "${text}" model ${field})
endforeach()
math(EXPR kv "${hidden} / ${heads} * ${kv_heads}")
math(EXPR n_gemm "${layers} * (2 * ${hidden} * ${hidden} + 2 * ${hidden} * ${kv} + 3 * ${hidden} * ${intermediate}) + ${hidden} * ${vocab}")
foreach(i 0 1)
  string(JSON tokens GET "${text}" rows ${i} tokens)
  string(JSON got GET "${text}" rows ${i} model_flops)
  math(EXPR want "6 * ${n_gemm} * ${tokens} + 6 * ${layers} * ${tokens} * ${tokens} * ${hidden}")
  if(NOT got EQUAL want)
    message(FATAL_ERROR "train.json: row ${i}: model_flops ${got}, expected ${want}")
  endif()
endforeach()

run_bench(gpu_ring_bench ${RING} --backend sim-gpu --quick --json ${WORK}/ring_sim.json)
# 2 token counts x fwd, fwd+bwd on the staged path; sim-gpu has no direct path (a note says so).
check_json(${WORK}/ring_sim.json 4 tokens ring_ms compute_ms exposed comm_ms hidden)
run_bench(gpu_ring_bench ${RING} --backend cpu --quick --path direct,staged --json ${WORK}/ring_cpu.json)
check_json(${WORK}/ring_cpu.json 8 tokens ring_ms compute_ms exposed comm_ms hidden)
# The GPU kernels (the fused attention at d 64) under the SIMT emulation, where built (~1 s).
if(EMU)
  run_bench(gpu_ring_bench ${RING} --backend cuda-emu --quick --json ${WORK}/ring_emu.json)
  check_json(${WORK}/ring_emu.json 4 tokens ring_ms compute_ms exposed comm_ms hidden)
endif()
