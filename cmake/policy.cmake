# policy_test(NAME SOURCES... LIBS...): a GoogleTest binary registered with CTest.
function(policy_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST PROPERTIES LABELS "${ARG_LABELS}")
endfunction()

# policy_embed_migrations(TARGET DIR NAMESPACE): compiles DIR/NNN_*.sql into a library
# exposing `const std::vector<policy::pg::Migration>& <NAMESPACE>::Migrations()`.
function(policy_embed_migrations target dir namespace)
  file(GLOB sql_files CONFIGURE_DEPENDS ${dir}/[0-9][0-9][0-9]_*.sql)
  list(SORT sql_files)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}.cc)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/cmake/embed_migrations.py
            --namespace ${namespace} --output ${out} ${sql_files}
    DEPENDS ${sql_files} ${PROJECT_SOURCE_DIR}/cmake/embed_migrations.py
    COMMENT "Embedding migrations for ${target}")
  add_library(${target} STATIC ${out})
  target_link_libraries(${target} PUBLIC policy_pg)
endfunction()

# policy_fuzz_target(NAME SOURCE LIBS... SEEDS dir): with clang and POLICY_FUZZ, a libFuzzer
# binary; otherwise the same target under common/testing/fuzz_driver.cc, registered with CTest
# to run its seeds and deterministic mutations of them.
function(policy_fuzz_target name)
  cmake_parse_arguments(ARG "" "SOURCE;SEEDS" "LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCE})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS})
  if(POLICY_FUZZ)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    # "<binary> <seed dir>" per line, for the runner (tools/dev's fuzz step).
    file(APPEND ${CMAKE_BINARY_DIR}/fuzz_targets.txt
         "${CMAKE_CURRENT_BINARY_DIR}/${name} ${ARG_SEEDS}\n")
  else()
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/common/testing/fuzz_driver.cc)
    file(GLOB seeds ${ARG_SEEDS}/*)
    add_test(NAME ${name} COMMAND ${name} ${seeds})
    set_tests_properties(${name} PROPERTIES LABELS fuzz)
  endif()
endfunction()
