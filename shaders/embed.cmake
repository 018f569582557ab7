# Writes OUTPUT: a C file holding every SPIR-V module in INPUTS (a ;-list) as
# a byte array, and the table runtime/vk_shaders.h declares. INPUTS arrives
# |-separated (a ;-list would split the command line).
string(REPLACE "|" ";" INPUTS "${INPUTS}")
set(body "/* Generated from the shaders/ .comp files by shaders/embed.cmake; do not edit. */\n#include \"runtime/vk_shaders.h\"\n\n")
set(table "")
set(count 0)
foreach(spv ${INPUTS})
  get_filename_component(name ${spv} NAME_WE)
  file(READ ${spv} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "static const unsigned char spv_${name}[] __attribute__((aligned(4))) = {${bytes}};\n")
  string(APPEND table "    {\"${name}\", spv_${name}, sizeof spv_${name}},\n")
  math(EXPR count "${count} + 1")
endforeach()
string(APPEND body "\nconst rf_vk_shader rf_vk_shaders[] = {\n${table}};\nconst int rf_vk_shader_count = ${count};\n")
file(WRITE ${OUTPUT}.tmp "${body}")
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
