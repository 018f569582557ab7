# Writes OUTPUT: a C file holding every split file in INPUTS (|-separated: a
# ;-list would split the command line) as bytes, named by layout (the file's
# base name, e.g. covid-chestxray), and the rf_eval_builtin_splits table
# datasets/eval_internal.h declares. radfuse eval takes a layout's fixed split
# from here when no --split is given, so the repository's split is the default
# without a data directory beside the binary.
string(REPLACE "|" ";" INPUTS "${INPUTS}")
set(body "/* Generated from datasets/splits/ by datasets/eval_embed_splits.cmake; do not edit. */\n#include \"datasets/eval_internal.h\"\n\n")
set(table "")
foreach(f ${INPUTS})
  get_filename_component(name ${f} NAME)
  get_filename_component(layout ${f} NAME_WE)
  string(MAKE_C_IDENTIFIER ${layout} id)
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "static const unsigned char split_${id}[] = {${bytes}0};\n")
  string(APPEND table "    {\"${layout}\", \"datasets/splits/${name}\", (const char *)split_${id}, sizeof split_${id} - 1},\n")
endforeach()
string(APPEND body "\nconst rf_eval_builtin_split rf_eval_builtin_splits[] = {\n${table}    {0, 0, 0, 0},\n};\n")
file(WRITE ${OUTPUT}.tmp "${body}")
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
