/* The compute shaders of shaders/, compiled to SPIR-V at build time and
 * embedded here by shaders/embed.cmake: no shader file is read at run time. */
#ifndef RADFUSE_RUNTIME_VK_SHADERS_H
#define RADFUSE_RUNTIME_VK_SHADERS_H

#include <stddef.h>

typedef struct rf_vk_shader {
    const char *name; /* the .comp file's base name */
    const unsigned char *spirv;
    size_t size;
} rf_vk_shader;

extern const rf_vk_shader rf_vk_shaders[];
extern const int rf_vk_shader_count;

#endif
