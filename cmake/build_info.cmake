# build_info.cmake: run by the build (cmake -DSRC=... -DOUT=... -P build_info.cmake) to write OUT,
# a header with the git commit the build is made from (short hash, "-dirty" with uncommitted
# changes to tracked files; "unknown" outside a git checkout) and the number of commits, as
# llama.cpp's build_commit / build_number, for `xledit bench`. OUT is rewritten only when its
# text changes, so an unchanged commit recompiles nothing.
set(commit "unknown")
set(number 0)
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SRC} rev-parse --short=8 HEAD
                  OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
  if(rc EQUAL 0)
    set(commit "${head}")
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SRC} rev-list --count HEAD
                    OUTPUT_VARIABLE number OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SRC} status --porcelain --untracked-files=no
                    OUTPUT_VARIABLE dirty OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(dirty)
      set(commit "${commit}-dirty")
    endif()
  endif()
endif()
set(text "/* written by cmake/build_info.cmake at build time */\n#define XLE_BUILD_COMMIT \"${commit}\"\n#define XLE_BUILD_NUMBER ${number}\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE "${OUT}" "${text}")
endif()
