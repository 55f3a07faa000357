# Builds and runs a consumer project outside the tree (ctest script mode).
#   -DSOURCE_DIR=<diffinstruct source> -DWORK_DIR=<scratch> -DMODE=find_package|add_subdirectory -DTorch_DIR=<dir>
cmake_minimum_required(VERSION 3.21)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# This build's LibTorch settings reach the consumers through initial-cache files (lists survive intact).
string(REPLACE "|" ";" PREFIX_PATH "${PREFIX_PATH}")
function(write_cache file prefix)
  file(WRITE ${file} "set(CMAKE_PREFIX_PATH \"${prefix}\" CACHE STRING \"\")\n"
                     "set(Torch_DIR \"${Torch_DIR}\" CACHE PATH \"\")\n"
                     "set(CMAKE_BUILD_TYPE Release CACHE STRING \"\")\n")
  if(CXX_STANDARD)
    file(APPEND ${file} "set(CMAKE_CXX_STANDARD ${CXX_STANDARD} CACHE STRING \"\")\n")
  endif()
  if(CUDA_STANDARD)
    file(APPEND ${file} "set(CMAKE_CUDA_STANDARD ${CUDA_STANDARD} CACHE STRING \"\")\n")
  endif()
  if(EXE_LINKER_FLAGS)
    file(APPEND ${file} "set(CMAKE_EXE_LINKER_FLAGS \"${EXE_LINKER_FLAGS}\" CACHE STRING \"\")\n")
  endif()
endfunction()
write_cache(${WORK_DIR}/lib.cmake "${PREFIX_PATH}")
write_cache(${WORK_DIR}/app.cmake "${WORK_DIR}/prefix;${PREFIX_PATH}")

set(_launcher "")
find_program(_ccache ccache)
if(_ccache)
  set(_launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${_ccache})
endif()

include(${CMAKE_CURRENT_LIST_DIR}/../run_step.cmake)

# The README's trainer set-up is the consumer's, line for line (so the README's code compiles and runs).
file(READ ${CMAKE_CURRENT_LIST_DIR}/consumer.cpp _consumer)
file(READ ${SOURCE_DIR}/README.md _readme)
string(REGEX MATCH "// readme-setup-begin\n(.*)  // readme-setup-end" _m "${_consumer}")
# Without the two spaces of the function's indentation (literal replacements: CMake's regex anchors
# would match again after every replacement).
string(SUBSTRING "${CMAKE_MATCH_1}" 2 -1 _setup)
string(REPLACE "\n  " "\n" _setup "${_setup}")
string(FIND "${_readme}" "${_setup}" _at)
if(_setup STREQUAL "" OR _at EQUAL -1)
  message(FATAL_ERROR "README.md does not show the trainer set-up of tests/consumer/consumer.cpp as written there:\n${_setup}")
endif()

if(MODE STREQUAL "find_package")
  # Install the package into a scratch prefix, then build a project that only knows find_package.
  run_step("consumer step" ${CMAKE_COMMAND} -C ${WORK_DIR}/lib.cmake -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix
      -DDIFFINSTRUCT_BUILD_TESTS=OFF -DDIFFINSTRUCT_BUILD_EXAMPLES=OFF -DDIFFINSTRUCT_ENABLE_CUDA=${ENABLE_CUDA})
  run_step("consumer step" ${CMAKE_COMMAND} --build ${WORK_DIR}/lib -j2)
  run_step("consumer step" ${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
  run_step("consumer step" ${CMAKE_COMMAND} -C ${WORK_DIR}/app.cmake -S ${SOURCE_DIR}/tests/consumer/find_package -B ${WORK_DIR}/app ${_launcher})
elseif(MODE STREQUAL "add_subdirectory")
  run_step("consumer step" ${CMAKE_COMMAND} -C ${WORK_DIR}/lib.cmake -S ${SOURCE_DIR}/tests/consumer/add_subdirectory -B ${WORK_DIR}/app
      -DDIFFINSTRUCT_SOURCE_DIR=${SOURCE_DIR} ${_launcher})
else()
  message(FATAL_ERROR "MODE must be find_package or add_subdirectory, got '${MODE}'")
endif()
run_step("consumer step" ${CMAKE_COMMAND} --build ${WORK_DIR}/app -j2)
run_step("consumer step" ${WORK_DIR}/app/consumer)
