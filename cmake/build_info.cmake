# build_info.cmake: writes the build-info header (cmake -P, run at every build by the
# ringworld_build_info target): the version, the git commit of the source tree (with "-dirty"
# when tracked files differ from it; "unknown" outside a git checkout) and the build options
# CMake configured. configure_file rewrites the header only when its text changes, so a build
# without a new commit recompiles nothing.
#   -DSOURCE_DIR=... -DOUTPUT=... -DVERSION=... -DBUILD_OPTIONS=... -DTEMPLATE=...
set(commit "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} rev-parse HEAD
                  OUTPUT_VARIABLE head RESULT_VARIABLE head_status OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(head_status EQUAL 0 AND head)
    set(commit "${head}")
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} status --porcelain --untracked-files=no
                    OUTPUT_VARIABLE changes RESULT_VARIABLE status_status ERROR_QUIET)
    if(status_status EQUAL 0 AND changes)
      set(commit "${commit}-dirty")
    endif()
  endif()
endif()
set(RINGWORLD_GIT_COMMIT "${commit}")
set(RINGWORLD_VERSION "${VERSION}")
set(RINGWORLD_BUILD_OPTIONS "${BUILD_OPTIONS}")
configure_file(${TEMPLATE} ${OUTPUT} @ONLY)
