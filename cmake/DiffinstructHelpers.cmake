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

# The malloc of a program (examples, benchmarks). DIFFINSTRUCT_MALLOC = auto links tcmalloc-minimal
# (Debian: libtcmalloc-minimal4) when it is installed and LibTorch is 1.x, where it cut a real-size
# step by 13% (glibc's allocator spent 35.7 s of system time per step returning and faulting
# pages); with LibTorch 2.x glibc's malloc is kept, tcmalloc measured 3% slower there
# (docs/performance.md, the real-size step). tcmalloc links it whatever the version (an error when
# missing), system never. The library itself stays allocator-agnostic: a user's trainer links what it
# wants. Never with the sanitizers (ASan brings its own allocator).
function(diffinstruct_program_malloc target)
  if(DIFFINSTRUCT_SANITIZE OR DIFFINSTRUCT_MALLOC STREQUAL "system")
    return()
  endif()
  if(DIFFINSTRUCT_MALLOC STREQUAL "auto" AND Torch_VERSION VERSION_GREATER_EQUAL 2)
    return()
  endif()
  find_library(DIFFINSTRUCT_TCMALLOC_LIBRARY NAMES tcmalloc_minimal libtcmalloc_minimal.so.4)
  if(DIFFINSTRUCT_TCMALLOC_LIBRARY)
    target_link_libraries(${target} PRIVATE -Wl,--no-as-needed ${DIFFINSTRUCT_TCMALLOC_LIBRARY} -Wl,--as-needed)
  elseif(DIFFINSTRUCT_MALLOC STREQUAL "tcmalloc")
    message(FATAL_ERROR "DIFFINSTRUCT_MALLOC=tcmalloc: libtcmalloc_minimal was not found (Debian: apt-get install libtcmalloc-minimal4)")
  endif()
endfunction()
