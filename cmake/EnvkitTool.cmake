# envkit_add_tool(NAME [SOURCES src...] [LIBS lib...]): the one way a command joins the build.
#
# The command's logic (every source but main.cpp) becomes the static library <name>_logic,
# which the binary and the unit tests both link; main.cpp stays thin. The binary,
# man/<name>.1 and a bash completion generated from the binary's own --help are installed.
function(envkit_add_tool name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  string(REPLACE "-" "_" id "${name}")
  set(logic ${id}_logic)
  add_library(${logic} STATIC ${ARG_SOURCES})
  # A tool's headers are included by their owner's name: "sensor-push/config.hpp".
  target_include_directories(${logic} PUBLIC ${PROJECT_SOURCE_DIR}/tools)
  target_link_libraries(${logic} PUBLIC envkit::core ${ARG_LIBS})
  set_property(GLOBAL APPEND PROPERTY ENVKIT_TOOL_LOGIC_LIBS ${logic})
  add_executable(${name} main.cpp)
  target_link_libraries(${name} PRIVATE ${logic})
  install(TARGETS ${name} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(FILES ${PROJECT_SOURCE_DIR}/man/${name}.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  # Completion from the command's own --help, so it lists exactly the options it has.
  set(completion ${PROJECT_BINARY_DIR}/completions/${name})
  add_custom_command(OUTPUT ${completion}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/completions
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0
            sh ${PROJECT_SOURCE_DIR}/completions/generate $<TARGET_FILE:${name}> ${completion}
    DEPENDS ${name} ${PROJECT_SOURCE_DIR}/completions/generate
    COMMENT "Generating the bash completion of ${name}"
    VERBATIM)
  add_custom_target(${id}_completion ALL DEPENDS ${completion})
  install(FILES ${completion} DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
endfunction()
