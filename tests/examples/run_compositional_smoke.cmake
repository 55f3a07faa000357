# Runs the compositional miniature with --quick (tiny budgets: the stages connect, the evaluator runs;
# no result is checked), checks every promised output and that the pipeline folder it wrote is one
# the library's tools read (di_evaluate samples its teacher and scores it with the CLIP it trained),
# then reruns it and checks every stage comes from the cache.
include(${CMAKE_CURRENT_LIST_DIR}/../run_step.cmake)
file(REMOVE_RECURSE ${OUT})
set(args --quick --out ${OUT} --threads 1 --seeds 2 --jobs 2)  # two seeds, two runs at a time
run_step("06_compositional --quick" ${EXE} ${args})
require_files(${OUT} report.md metrics.json metrics.csv samples_test_images.png samples_teacher_4steps_cfg1.png samples_teacher_4steps_cfg3.png
              samples_init.png samples_di_star_in.png samples_di_star_out.png samples_di_star_nocfg.png samples_di_plusplus.png samples_sim.png
              samples_di.png samples_di_star_in_arew3.png samples_di_plusplus_arew3.png samples_di_star_in_2step.png reward_vs_evaluator.png
              pipeline/model_index.json pipeline/unet/config.json pipeline/unet/diffusion_pytorch_model.safetensors pipeline/vae/config.json
              pipeline/text_encoder/config.json pipeline/text_encoder/model.safetensors pipeline/tokenizer/vocab.json pipeline/tokenizer/merges.txt
              pipeline/scheduler/scheduler_config.json)
file(READ ${OUT}/metrics.json json)
string(JSON n LENGTH "${json}" rows)
# test images, the teacher at 4 steps with CFG 1 and 3, the init; per seed 6 methods, a 2-step DI*, DI* and DI++ at 1 extra reward scale
if(NOT n EQUAL 22)
  message(FATAL_ERROR "metrics.json lists ${n} rows, expected 22")
endif()
string(JSON n LENGTH "${json}" summary)
if(NOT n EQUAL 13)
  message(FATAL_ERROR "metrics.json summarises ${n} lines, expected 13 (the two seeds of each run in one line)")
endif()
string(JSON seeds GET "${json}" summary 4 seeds)
string(JSON name GET "${json}" summary 4 name)
if(NOT seeds EQUAL 2 OR NOT name STREQUAL "DI*-in")
  message(FATAL_ERROR "summary line 4 is '${name}' over ${seeds} seeds, expected DI*-in over 2")
endif()
# The test images through the exact evaluator: position and colour are read back exactly.
foreach(key position colour layout)
  string(JSON v GET "${json}" rows 0 all ${key})
  if(NOT v EQUAL 1)
    message(FATAL_ERROR "the test images' ${key} accuracy is ${v}, expected 1 (the evaluator reads it exactly)")
  endif()
endforeach()
# Every generator is a UNet folder (what di_evaluate --generator and 05_text_to_image --generator read).
file(GLOB generators ${OUT}/init_*/config.json ${OUT}/di_plusplus_*/diffusion_pytorch_model.safetensors)
list(LENGTH generators n_generators)
if(NOT n_generators EQUAL 5)  # the init; DI++ at a_rew 1 and 3, two seeds each
  message(FATAL_ERROR "expected the init's and four DI++ UNet folders, found: ${generators}")
endif()
file(GLOB clip_dir LIST_DIRECTORIES true ${OUT}/clip_*)
file(WRITE ${OUT}/prompts.txt "a red sneaker in the top left\na blue bag to the right of a yellow shirt\n")
run_step("di_evaluate on the miniature's pipeline" ${EVALUATE} --teacher ${OUT}/pipeline --teacher-steps 2 --guidance 3 --prompts ${OUT}/prompts.txt
         --seeds 2 --clip ${clip_dir} --out ${OUT}/evaluate)
require_files(${OUT}/evaluate report.md metrics.json)
execute_process(COMMAND ${EXE} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out2 ERROR_VARIABLE err2)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "rerun failed (${rc}):\n${out2}\n${err2}")
endif()
string(REGEX MATCHALL ": cached " hits "${out2}")
list(LENGTH hits n_cached)
if(NOT n_cached EQUAL 24)  # recogniser, tokenizer, CLIP, VAE, teacher, init, 2 × 9 post-trained generators
  message(FATAL_ERROR "rerun took ${n_cached} stages from the cache, expected 24:\n${out2}")
endif()
message(STATUS "miniature outputs complete, its pipeline read by di_evaluate; rerun fully cached")
# --only trains the named runs and refuses a name no run has (before any training).
execute_process(COMMAND ${EXE} ${args} --only di_star_in,sim RESULT_VARIABLE rc OUTPUT_VARIABLE out3 ERROR_VARIABLE err3)
string(REGEX MATCHALL "post-training: 4 runs" hit "${out3}")
if(NOT rc EQUAL 0 OR NOT hit)
  message(FATAL_ERROR "--only di_star_in,sim did not train 4 runs (2 names x 2 seeds), exit ${rc}:\n${out3}\n${err3}")
endif()
execute_process(COMMAND ${EXE} ${args} --only di_star_in,nonsense RESULT_VARIABLE rc OUTPUT_VARIABLE out4 ERROR_VARIABLE err4)
if(rc EQUAL 0 OR NOT err4 MATCHES "--only names 'nonsense', which is not a run" OR NOT err4 MATCHES "the runs are: di_star_in, di_star_out, ")
  message(FATAL_ERROR "--only with an unknown name: exit ${rc}, expected an error naming it and the runs:\n${err4}")
endif()
message(STATUS "--only selects runs and refuses an unknown name")
