# envkit_add_tool(NAME [SOURCES src...] [LIBS lib...]): the one way a command joins the build.
#
# The command's logic (every source but main.cpp) becomes the static library <name>_logic,
# which the binary and the unit tests both link; main.cpp stays thin. The binary and
# man/<name>.1 are installed.
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
endfunction()
