# Writes OUTPUT: a C file holding every rule table in INPUTS (|-separated: a
# ;-list would split the command line) as bytes, and the clin_builtin_tables
# list text/clin_internal.h declares. Built into radfuse_text so that the
# binary needs no data directory; rf_clin_rules_load can still read others.
string(REPLACE "|" ";" INPUTS "${INPUTS}")
set(body "/* Generated from the data/text/ tables by text/embed_tables.cmake; do not edit. */\n#include \"text/clin_internal.h\"\n\n")
set(table "")
set(count 0)
foreach(f ${INPUTS})
  get_filename_component(name ${f} NAME)
  string(MAKE_C_IDENTIFIER ${name} id)
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "static const unsigned char table_${id}[] = {${bytes}0};\n")
  string(APPEND table "    {\"${name}\", (const char *)table_${id}, sizeof table_${id} - 1},\n")
  math(EXPR count "${count} + 1")
endforeach()
string(APPEND body "\nconst clin_table clin_builtin_tables[] = {\n${table}    {0, 0, 0},\n};\nconst int clin_builtin_table_count = ${count};\n")
file(WRITE ${OUTPUT}.tmp "${body}")
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
