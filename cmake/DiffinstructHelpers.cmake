# Helpers for the project's own executables (tests, examples, benchmarks).

# A target that precompiles the torch headers once; others reuse its PCH (same flags required).
# Usage: diffinstruct_pch_anchor(<name> HEADERS <h>... [LINK <targets>...])
function(diffinstruct_pch_anchor name)
  cmake_parse_arguments(ARG "" "" "HEADERS;LINK" ${ARGN})
  add_library(${name} STATIC ${PROJECT_SOURCE_DIR}/cmake/pch_anchor.cpp)
  target_link_libraries(${name} PUBLIC diffinstruct::diffinstruct ${ARG_LINK})
  diffinstruct_common_flags(${name})
  if(DIFFINSTRUCT_USE_PCH)
    target_precompile_headers(${name} PRIVATE ${ARG_HEADERS})
  endif()
endfunction()

function(diffinstruct_common_flags target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(DIFFINSTRUCT_SANITIZE)
    target_compile_options(${target} PUBLIC -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
  endif()
endfunction()

# Reuse a PCH anchor's precompiled header (falls back to nothing when PCH is off).
function(diffinstruct_use_pch target anchor)
  if(DIFFINSTRUCT_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM ${anchor})
  endif()
endfunction()
