# Shared by the ctest driver scripts (cmake -P): run_step(<label> <command>...) runs a command and
# fails the test with its label, exit code and output when it does not succeed.
function(run_step label)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${label} failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${label}:\n${out}")
endfunction()
