/*
 * The Vulkan entry points radfuse uses, loaded at run time from the system's
 * loader (libvulkan.so.1) with dlopen, so radfuse starts and runs on the CPU
 * where no loader is installed. One X-macro list names every function once.
 */
#ifndef RADFUSE_RUNTIME_VK_LOADER_H
#define RADFUSE_RUNTIME_VK_LOADER_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include "radfuse/runtime.h"

#define RF_VK_GLOBAL_FUNCS(X)                                                                       \
    X(vkCreateInstance)                                                                             \
    X(vkEnumerateInstanceExtensionProperties)                                                       \
    X(vkEnumerateInstanceLayerProperties)

#define RF_VK_INSTANCE_FUNCS(X)                                                                     \
    X(vkDestroyInstance)                                                                            \
    X(vkEnumeratePhysicalDevices)                                                                   \
    X(vkGetPhysicalDeviceProperties)                                                                \
    X(vkGetPhysicalDeviceProperties2)                                                               \
    X(vkGetPhysicalDeviceFeatures2)                                                                 \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                                     \
    X(vkGetPhysicalDeviceMemoryProperties)                                                          \
    X(vkEnumerateDeviceExtensionProperties)                                                         \
    X(vkCreateDevice)                                                                               \
    X(vkGetDeviceProcAddr)

#define RF_VK_DEBUG_FUNCS(X)                                                                        \
    X(vkCreateDebugUtilsMessengerEXT)                                                               \
    X(vkDestroyDebugUtilsMessengerEXT)

/* instance functions of extensions, NULL where the driver has none */
#define RF_VK_OPTIONAL_INSTANCE_FUNCS(X)                                                            \
    X(vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)

#define RF_VK_DEVICE_FUNCS(X)                                                                       \
    X(vkDestroyDevice)                                                                              \
    X(vkGetDeviceQueue)                                                                             \
    X(vkCreateBuffer)                                                                               \
    X(vkDestroyBuffer)                                                                              \
    X(vkGetBufferMemoryRequirements)                                                                \
    X(vkAllocateMemory)                                                                             \
    X(vkFreeMemory)                                                                                 \
    X(vkBindBufferMemory)                                                                           \
    X(vkMapMemory)                                                                                  \
    X(vkUnmapMemory)                                                                                \
    X(vkGetBufferDeviceAddress)                                                                     \
    X(vkCreateShaderModule)                                                                         \
    X(vkDestroyShaderModule)                                                                        \
    X(vkCreatePipelineLayout)                                                                       \
    X(vkDestroyPipelineLayout)                                                                      \
    X(vkCreateComputePipelines)                                                                     \
    X(vkDestroyPipeline)                                                                            \
    X(vkCreatePipelineCache)                                                                        \
    X(vkGetPipelineCacheData)                                                                       \
    X(vkDestroyPipelineCache)                                                                       \
    X(vkCreateCommandPool)                                                                          \
    X(vkDestroyCommandPool)                                                                         \
    X(vkAllocateCommandBuffers)                                                                     \
    X(vkBeginCommandBuffer)                                                                         \
    X(vkEndCommandBuffer)                                                                           \
    X(vkResetCommandBuffer)                                                                         \
    X(vkCmdBindPipeline)                                                                            \
    X(vkCmdPushConstants)                                                                           \
    X(vkCmdDispatch)                                                                                \
    X(vkCmdPipelineBarrier)                                                                         \
    X(vkCmdCopyBuffer)                                                                              \
    X(vkCmdFillBuffer)                                                                              \
    X(vkCmdResetQueryPool)                                                                          \
    X(vkCmdWriteTimestamp)                                                                          \
    X(vkCreateQueryPool)                                                                            \
    X(vkDestroyQueryPool)                                                                           \
    X(vkGetQueryPoolResults)                                                                        \
    X(vkQueueSubmit)                                                                                \
    X(vkCreateFence)                                                                                \
    X(vkDestroyFence)                                                                               \
    X(vkWaitForFences)                                                                              \
    X(vkResetFences)                                                                                \
    X(vkDeviceWaitIdle)

typedef struct rf_vk_fn {
    void *lib;
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
#define RF_VK_DECLARE(name) PFN_##name name;
    RF_VK_GLOBAL_FUNCS(RF_VK_DECLARE)
    RF_VK_INSTANCE_FUNCS(RF_VK_DECLARE)
    RF_VK_DEBUG_FUNCS(RF_VK_DECLARE)
    RF_VK_OPTIONAL_INSTANCE_FUNCS(RF_VK_DECLARE)
    RF_VK_DEVICE_FUNCS(RF_VK_DECLARE)
#undef RF_VK_DECLARE
} rf_vk_fn;

/* Opens the loader and the global functions. Fails (message set) when no
 * loader is installed. */
int rf_vk_load(rf_vk_fn *fn, rf_err *err);
/* Instance-level functions (the debug and optional ones may stay NULL). */
int rf_vk_load_instance(rf_vk_fn *fn, VkInstance inst, rf_err *err);
int rf_vk_load_device(rf_vk_fn *fn, VkDevice dev, rf_err *err);
/* Forgets the functions; the loader library itself stays loaded. */
void rf_vk_unload(rf_vk_fn *fn);

#endif
