# Builds and runs a consumer project outside the tree (ctest script mode).
#   -DSOURCE_DIR=<diffinstruct source> -DWORK_DIR=<scratch> -DMODE=find_package|add_subdirectory -DTorch_DIR=<dir>
cmake_minimum_required(VERSION 3.21)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

set(_launcher "")
find_program(_ccache ccache)
if(_ccache)
  set(_launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${_ccache})
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

if(MODE STREQUAL "find_package")
  # Install the package into a scratch prefix, then build a project that only knows find_package.
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix
      -DDIFFINSTRUCT_BUILD_TESTS=OFF -DDIFFINSTRUCT_BUILD_EXAMPLES=OFF -DTorch_DIR=${Torch_DIR})
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer/find_package -B ${WORK_DIR}/app
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DTorch_DIR=${Torch_DIR} -DCMAKE_BUILD_TYPE=Release ${_launcher})
elseif(MODE STREQUAL "add_subdirectory")
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer/add_subdirectory -B ${WORK_DIR}/app
      -DDIFFINSTRUCT_SOURCE_DIR=${SOURCE_DIR} -DTorch_DIR=${Torch_DIR} -DCMAKE_BUILD_TYPE=Release ${_launcher})
else()
  message(FATAL_ERROR "MODE must be find_package or add_subdirectory, got '${MODE}'")
endif()
run(${CMAKE_COMMAND} --build ${WORK_DIR}/app -j2)
run(${WORK_DIR}/app/consumer)
