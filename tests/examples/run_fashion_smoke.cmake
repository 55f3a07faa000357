# Runs the Fashion-MNIST pipeline end to end on a tiny subset with tiny budgets, checks every
# promised output, then reruns it and checks every stage comes from the cache (nothing retrained).
include(${CMAKE_CURRENT_LIST_DIR}/../run_step.cmake)
file(REMOVE_RECURSE ${OUT})
set(args --train-subset 1000 --teacher-steps 30 --classifier-epochs 1 --distill-steps 3 --steps 3 --batch 8
         --eval-per-class 4 --teacher-scales 1,3 --out ${OUT})
execute_process(COMMAND ${EXE} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pipeline failed (${rc}):\n${out}\n${err}")
endif()
require_files(${OUT} report.md metrics.json metrics.csv reward_vs_fd.png samples_test_images.png samples_teacher_s1.png samples_teacher_s3.png
          samples_init.png samples_di_star_in.png samples_di_star_out.png samples_di_star_nocfg.png samples_di_plusplus.png
          samples_sim.png samples_di.png)
file(READ ${OUT}/metrics.json json)
string(JSON n LENGTH "${json}" rows)
# test images + 2 teacher scales + init + 6 methods + 4 extra reward scales
if(NOT n EQUAL 14)
  message(FATAL_ERROR "metrics.json lists ${n} rows, expected 14")
endif()
execute_process(COMMAND ${EXE} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out2 ERROR_VARIABLE err2)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "rerun failed (${rc}):\n${out2}\n${err2}")
endif()
string(REGEX MATCHALL "cached" hits "${out2}")
list(LENGTH hits n_cached)
# teacher, reward model, evaluator, init, 10 post-trained models
if(NOT n_cached EQUAL 14)
  message(FATAL_ERROR "rerun took ${n_cached} stages from the cache, expected 14:\n${out2}")
endif()
message(STATUS "pipeline outputs complete; rerun fully cached")
