# Runs the mixture demo with a tiny budget and checks every promised output exists and is non-empty.
include(${CMAKE_CURRENT_LIST_DIR}/../run_step.cmake)
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${EXE} --regression-steps 20 --distill-steps 5 --steps 5 --batch 64 --hidden 16 --eval-samples 512
                        --alpha-rew 0.1 --reward linear --out ${OUT}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "demo failed (${rc}):\n${out}\n${err}")
endif()
require_files(${OUT} teacher.png regressed.png initial.png pseudo_huber_a0.1.png squared_l2_a0.1.png kl_a0.1.png
          reward_vs_entropy.png runaway.png metrics.json metrics.csv)
file(READ ${OUT}/metrics.json json)
string(JSON n LENGTH "${json}" variants)
if(NOT n EQUAL 3)
  message(FATAL_ERROR "metrics.json lists ${n} variants, expected 3")
endif()
message(STATUS "demo outputs complete")
