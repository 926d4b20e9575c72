# Generates a C++ source that holds every catalog file as a string (run by the build, see
# CMakeLists.txt): the binary carries its catalog and needs no data directory at run time.
# Inputs: CATALOG_DIR, OUTPUT.
file(GLOB_RECURSE files RELATIVE "${CATALOG_DIR}" "${CATALOG_DIR}/*.toml")
list(SORT files)
set(body "// Generated from catalog/ by cmake/embed_catalog.cmake. Do not edit.\n")
string(APPEND body "#include \"mlsysim/catalog/embedded.hpp\"\nnamespace mlsysim {\n")
string(APPEND body "const EmbeddedFile kEmbeddedCatalog[] = {\n")
set(count 0)
foreach(f IN LISTS files)
  file(READ "${CATALOG_DIR}/${f}" text)
  string(APPEND body "  {\"${f}\", R\"MLSYSIM_CATALOG(${text})MLSYSIM_CATALOG\"},\n")
  math(EXPR count "${count} + 1")
endforeach()
string(APPEND body "};\nconst std::size_t kEmbeddedCatalogCount = ${count};\n}  // namespace mlsysim\n")
file(WRITE "${OUTPUT}.tmp" "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUTPUT}.tmp" "${OUTPUT}")
