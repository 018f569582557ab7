/*
 * The Vulkan backend's device layer: instance and device selection, memory
 * with buffer device addresses, pipelines built from the embedded SPIR-V (with
 * a pipeline cache on disk), and one command buffer per pass into which every
 * operation is recorded as a dispatch. Kernels (vk_ops.c) see only
 * rf_vk_dispatch and the device facts in rf_vk.
 *
 * Tensors on this backend hold device addresses in rf_tensor.data; shaders
 * take them as buffer references in push constants, so no descriptor sets.
 */
#ifndef RADFUSE_RUNTIME_VK_DEVICE_H
#define RADFUSE_RUNTIME_VK_DEVICE_H

#include <stdint.h>

#include "runtime/backend.h"
#include "runtime/vk_loader.h"

#define RF_VK_MAX_PUSH 128 /* the guaranteed minimum; lavapipe has no more */

typedef struct rf_vk_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    VkDeviceAddress address;
    size_t size;
    void *mapped; /* host-visible buffers only */
    struct rf_vk_buffer *next;
} rf_vk_buffer;

typedef struct rf_vk_profile_entry {
    int shader;
    uint32_t query; /* first of two timestamps */
} rf_vk_profile_entry;

typedef struct rf_vk {
    rf_vk_fn fn;
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice physical;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memory_props;
    uint32_t subgroup_size;
    int has_fp16;      /* shaderFloat16 + storageBuffer16BitAccess enabled */
    /* VK_NV_cooperative_matrix enabled with 16x16x16 fp16 x fp16 -> fp32 at
     * subgroup scope on 32-wide subgroups (tensor cores): fp16 linears run
     * the gemm_coop shaders. RADFUSE_VK_COOPMAT=0 keeps them off. */
    int has_coopmat;
    rf_precision precision; /* of linears prepared from now on (RF_PRECISION_FP16 needs has_fp16) */
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool command_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkPipelineLayout layout;
    VkPipelineCache cache;
    char cache_path[4096];
    VkPipeline *pipelines; /* one per embedded shader, built on first use */
    rf_vk_buffer *buffers; /* live device buffers, for address lookup */
    rf_vk_buffer *staging; /* host-visible, for uploads and downloads */
    rf_vk_buffer *scratch; /* device-local, for kernels' intermediates */
    int recording;
    /* validation (RADFUSE_VK_VALIDATION=1): any message fails the pass */
    int validation;
    int validation_messages;
    char validation_first[400];
    /* profiling (RADFUSE_PROFILE=1): per-dispatch timestamps */
    int profile;
    VkQueryPool queries;
    rf_vk_profile_entry *profile_entries;
    uint32_t profile_count, profile_cap;
} rf_vk;

/* Creates instance and device. index < 0 picks the best device (discrete >
 * integrated > others > CPU implementations); require_gpu refuses CPU
 * implementations such as lavapipe. */
int rf_vk_open(rf_vk *vk, int index, int require_gpu, rf_err *err);
void rf_vk_close(rf_vk *vk);

/* Device-local memory with a device address. */
int rf_vk_buffer_create(rf_vk *vk, size_t bytes, int host_visible, rf_vk_buffer **out, rf_err *err);
void rf_vk_buffer_destroy(rf_vk *vk, rf_vk_buffer *b);
/* The live buffer holding address, or NULL. */
rf_vk_buffer *rf_vk_buffer_find(rf_vk *vk, VkDeviceAddress address);
/* Scratch memory of at least bytes for the current pass; its address. */
int rf_vk_scratch(rf_vk *vk, size_t bytes, VkDeviceAddress *address, rf_err *err);

/* Copies between host memory and device addresses outside a pass (through
 * the staging buffer; synchronous). rows > 1 copies rows of row_bytes that
 * are src_pitch bytes apart on the device. */
int rf_vk_write(rf_vk *vk, VkDeviceAddress dst, const void *src, size_t bytes, rf_err *err);
int rf_vk_read(rf_vk *vk, void *dst, VkDeviceAddress src, size_t row_bytes, size_t rows, size_t src_pitch,
               rf_err *err);

/* Pass recording. */
int rf_vk_begin(rf_vk *vk, rf_err *err);
int rf_vk_end(rf_vk *vk, int submit, rf_err *err);

/* Records shader (by its .comp base name) with push constants params over
 * groups gx x gy x gz, then a barrier so the next dispatch sees its writes. */
int rf_vk_dispatch(rf_vk *vk, const char *shader, const void *params, size_t params_size, uint32_t gx,
                   uint32_t gy, uint32_t gz, rf_err *err);

/* The Vulkan backend (vk_ops.c): index as rf_vk_open. */
int rf_vk_backend_create(rf_backend **out, int index, int require_gpu, rf_err *err);

#endif
