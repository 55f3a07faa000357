# Shared by the ctest driver scripts (cmake -P): run_step(<label> <command>...) runs a command and
# fails the test with its label, exit code and output when it does not succeed.
function(run_step label)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${label} failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${label}:\n${out}")
endfunction()

# require_files(<dir> <file>...): each file exists under dir and is not empty.
function(require_files dir)
  foreach(f ${ARGN})
    if(NOT EXISTS ${dir}/${f})
      message(FATAL_ERROR "expected ${dir}/${f}, which was not written")
    endif()
    file(SIZE ${dir}/${f} size)
    if(size EQUAL 0)
      message(FATAL_ERROR "${dir}/${f} is empty")
    endif()
  endforeach()
endfunction()
