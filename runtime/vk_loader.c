#include "runtime/vk_loader.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

int rf_vk_load(rf_vk_fn *fn, rf_err *err)
{
    memset(fn, 0, sizeof *fn);
    /* RADFUSE_VULKAN_LOADER names another loader (and lets tests name none) */
    const char *chosen = getenv("RADFUSE_VULKAN_LOADER");
    const char *names[] = {chosen && *chosen ? chosen : "libvulkan.so.1", "libvulkan.so"};
    size_t tries = chosen && *chosen ? 1 : 2;
    for (size_t i = 0; i < tries && !fn->lib; i++)
        fn->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!fn->lib)
        return rf_err_set(err, RF_EUNSUP, "vulkan: no loader (%s) is installed", names[0]);
    /* POSIX guarantees a data pointer can hold a function's address here */
    void *sym = dlsym(fn->lib, "vkGetInstanceProcAddr");
    memcpy(&fn->vkGetInstanceProcAddr, &sym, sizeof sym);
    if (!fn->vkGetInstanceProcAddr) {
        rf_vk_unload(fn);
        return rf_err_set(err, RF_EUNSUP, "the Vulkan loader has no vkGetInstanceProcAddr");
    }
#define RF_VK_LOAD_GLOBAL(name)                                                                     \
    fn->name = (PFN_##name)fn->vkGetInstanceProcAddr(NULL, #name);                                  \
    if (!fn->name) {                                                                                \
        rf_vk_unload(fn);                                                                           \
        return rf_err_set(err, RF_EUNSUP, "the Vulkan loader lacks %s", #name);                     \
    }
    RF_VK_GLOBAL_FUNCS(RF_VK_LOAD_GLOBAL)
#undef RF_VK_LOAD_GLOBAL
    return RF_OK;
}

int rf_vk_load_instance(rf_vk_fn *fn, VkInstance inst, rf_err *err)
{
#define RF_VK_LOAD_INSTANCE(name)                                                                   \
    fn->name = (PFN_##name)fn->vkGetInstanceProcAddr(inst, #name);                                  \
    if (!fn->name)                                                                                  \
        return rf_err_set(err, RF_EUNSUP, "the Vulkan instance lacks %s", #name);
    RF_VK_INSTANCE_FUNCS(RF_VK_LOAD_INSTANCE)
#undef RF_VK_LOAD_INSTANCE
#define RF_VK_LOAD_OPTIONAL(name) fn->name = (PFN_##name)fn->vkGetInstanceProcAddr(inst, #name);
    RF_VK_DEBUG_FUNCS(RF_VK_LOAD_OPTIONAL)
    RF_VK_OPTIONAL_INSTANCE_FUNCS(RF_VK_LOAD_OPTIONAL)
#undef RF_VK_LOAD_OPTIONAL
    return RF_OK;
}

int rf_vk_load_device(rf_vk_fn *fn, VkDevice dev, rf_err *err)
{
#define RF_VK_LOAD_DEVICE(name)                                                                     \
    fn->name = (PFN_##name)fn->vkGetDeviceProcAddr(dev, #name);                                     \
    if (!fn->name)                                                                                  \
        return rf_err_set(err, RF_EUNSUP, "the Vulkan device lacks %s", #name);
    RF_VK_DEVICE_FUNCS(RF_VK_LOAD_DEVICE)
#undef RF_VK_LOAD_DEVICE
    return RF_OK;
}

void rf_vk_unload(rf_vk_fn *fn)
{
    /* The loader stays mapped: drivers keep process-wide state (LLVM in
     * lavapipe, for one) that does not survive being unloaded and loaded
     * again, and dlopen of a loaded library is only a reference count. */
    memset(fn, 0, sizeof *fn);
}
