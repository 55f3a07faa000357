# Data-parallel tests: several worker processes on loopback, started by scripts/launch_local.sh.
#   -DMODE=equivalence|resume|failure|file_store|save_failure -DWORKER=<dp_worker> -DLAUNCH=<launch_local.sh> -DWORK=<dir> -DPORT=<port>
cmake_minimum_required(VERSION 3.21)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(ENV{GLOO_SOCKET_IFNAME} lo)
set(ENV{MASTER_ADDR} 127.0.0.1)
set(ENV{MASTER_PORT} ${PORT})
set(ENV{OMP_NUM_THREADS} 1)

include(${CMAKE_CURRENT_LIST_DIR}/../run_step.cmake)

if(MODE STREQUAL "equivalence")
  # 1 rank x batch 16 and 2 ranks x batch 8 must follow the same trajectory (float rounding aside:
  # a mean over 16 rows versus the mean of two means over 8 differs in the last bits, which 6 Adam
  # steps keep below 1e-5).
  run_step("1 rank x 16" bash ${LAUNCH} 1 ${WORKER} --steps 6 --batch 16 --out ${WORK}/one.pt)
  run_step("2 ranks x 8" bash ${LAUNCH} 2 ${WORKER} --steps 6 --batch 8 --out ${WORK}/two.pt)
  run_step("compare" ${WORKER} --compare ${WORK}/one.pt ${WORK}/two.pt --tol 1e-5)
  # Gradient accumulation: each rank's 8 rows as 4 micro-batches of 2, averaged over ranks once per update.
  run_step("2 ranks x 4 micro-batches of 2" bash ${LAUNCH} 2 ${WORKER} --steps 6 --batch 8 --micro-batches 4 --out ${WORK}/micro.pt)
  run_step("compare micro-batches" ${WORKER} --compare ${WORK}/one.pt ${WORK}/micro.pt --tol 1e-5)
elseif(MODE STREQUAL "file_store")
  run_step("1 rank x 16" bash ${LAUNCH} 1 ${WORKER} --steps 4 --batch 16 --out ${WORK}/one.pt --file-store ${WORK}/store1)
  run_step("2 ranks x 8, file store" bash ${LAUNCH} 2 ${WORKER} --steps 4 --batch 8 --out ${WORK}/two.pt --file-store ${WORK}/store2)
  run_step("compare" ${WORKER} --compare ${WORK}/one.pt ${WORK}/two.pt --tol 1e-5)
elseif(MODE STREQUAL "resume")
  # A 2-rank run checkpointed after step 3 and resumed by a new 2-rank run ends where an
  # uninterrupted 2-rank run ends (same arithmetic: exactly).
  run_step("uninterrupted" bash ${LAUNCH} 2 ${WORKER} --steps 6 --batch 8 --out ${WORK}/full.pt)
  run_step("first half" bash ${LAUNCH} 2 ${WORKER} --steps 3 --batch 8 --save-at 3 --checkpoint ${WORK}/ckpt.pt)
  if(NOT EXISTS ${WORK}/ckpt.pt)
    message(FATAL_ERROR "rank 0 did not write the checkpoint")
  endif()
  run_step("resumed" bash ${LAUNCH} 2 ${WORKER} --steps 6 --batch 8 --resume ${WORK}/ckpt.pt --out ${WORK}/resumed.pt)
  run_step("compare" ${WORKER} --compare ${WORK}/full.pt ${WORK}/resumed.pt --tol 0)
elseif(MODE STREQUAL "failure")
  # Rank 1 dies before step 3; rank 0 must stop with the documented message, within the timeout,
  # and the checkpoint written at step 2 must survive intact.
  string(TIMESTAMP t0 "%s")
  execute_process(COMMAND bash ${LAUNCH} 2 ${WORKER} --steps 20 --batch 8 --die-at 3 --save-at 2 --checkpoint ${WORK}/ckpt.pt
                          --timeout-ms 5000
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  string(TIMESTAMP t1 "%s")
  math(EXPR elapsed "${t1} - ${t0}")
  if(rc EQUAL 0)
    message(FATAL_ERROR "the run succeeded although rank 1 died:\n${out}\n${err}")
  endif()
  if(NOT err MATCHES "\\[rank 0\\] error: diffinstruct::DataParallel: .* failed on rank 0 of 2: another rank died, hung, or did not answer")
    message(FATAL_ERROR "rank 0 did not report the dead rank as documented:\n${out}\n${err}")
  endif()
  if(elapsed GREATER 30)
    message(FATAL_ERROR "rank 0 took ${elapsed} s to stop (timeout 5 s)")
  endif()
  # It was written by a 2-rank run: one process resumes it only when told to keep its own world size.
  execute_process(COMMAND ${WORKER} --steps 2 --batch 8 --resume ${WORK}/ckpt.pt RESULT_VARIABLE strict_rc ERROR_VARIABLE strict_err)
  if(strict_rc EQUAL 0 OR NOT strict_err MATCHES "world_size: checkpoint 2, this trainer 1")
    message(FATAL_ERROR "a 1-rank resume of a 2-rank checkpoint was not refused by name:\n${strict_err}")
  endif()
  run_step("checkpoint intact" ${WORKER} --steps 2 --batch 8 --resume ${WORK}/ckpt.pt --resume-mode live --out ${WORK}/after.pt)
  message(STATUS "rank 0 stopped after ${elapsed} s with:\n${err}")
elseif(MODE STREQUAL "save_failure")
  # Every rank calls save(); rank 0's write fails (no such folder). Rank 0 throws, and rank 1 learns
  # it at once from rank 0's report, long before the 60 s collective timeout.
  string(TIMESTAMP t0 "%s")
  execute_process(COMMAND bash ${LAUNCH} 2 ${WORKER} --steps 6 --batch 8 --save-at 2 --checkpoint ${WORK}/no_such_dir/ckpt.pt
                          --timeout-ms 60000
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
  string(TIMESTAMP t1 "%s")
  math(EXPR elapsed "${t1} - ${t0}")
  if(rc EQUAL 0)
    message(FATAL_ERROR "the run succeeded although rank 0 could not save:\n${out}\n${err}")
  endif()
  if(NOT err MATCHES "\\[rank 0\\] error: diffinstruct::DiStarTrainer::save: cannot write the checkpoint .*no_such_dir")
    message(FATAL_ERROR "rank 0 did not report its failed save:\n${out}\n${err}")
  endif()
  if(NOT err MATCHES "\\[rank 1\\] error: diffinstruct::DiStarTrainer::save: rank 0 could not write the checkpoint .*no_such_dir")
    message(FATAL_ERROR "rank 1 did not learn of rank 0's failed save:\n${out}\n${err}")
  endif()
  if(elapsed GREATER 20)
    message(FATAL_ERROR "the ranks took ${elapsed} s to stop (collective timeout 60 s): the failure did not reach rank 1 at once")
  endif()
  message(STATUS "both ranks stopped after ${elapsed} s with:\n${err}")
else()
  message(FATAL_ERROR "unknown MODE ${MODE}")
endif()
