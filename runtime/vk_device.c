#include "runtime/vk_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/fileio.h"
#include "runtime/vk_shaders.h"

#define STAGING_BYTES (32u << 20)
#define PROFILE_MAX_DISPATCHES 8192

static int vk_fail(rf_err *err, VkResult r, const char *what)
{
    return rf_err_set(err, r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? RF_ENOMEM
                                                                                                  : RF_EIO,
                      "vulkan: %s failed (VkResult %d)", what, (int)r);
}

/* ---- validation messages ---- */

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                   VkDebugUtilsMessageTypeFlagsEXT types,
                                                   const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    rf_vk *vk = user;
    if (vk->validation_messages++ == 0)
        snprintf(vk->validation_first, sizeof vk->validation_first, "%s",
                 data && data->pMessage ? data->pMessage : "(no text)");
    return VK_FALSE;
}

static int layer_available(rf_vk *vk, const char *name)
{
    uint32_t n = 0;
    vk->fn.vkEnumerateInstanceLayerProperties(&n, NULL);
    VkLayerProperties *layers = calloc(n ? n : 1, sizeof *layers);
    if (!layers)
        return 0;
    vk->fn.vkEnumerateInstanceLayerProperties(&n, layers);
    int found = 0;
    for (uint32_t i = 0; i < n && !found; i++)
        found = strcmp(layers[i].layerName, name) == 0;
    free(layers);
    return found;
}

/* ---- device choice ---- */

static int device_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

/* Features radfuse needs (1.2 and buffer device addresses) or uses when there. */
static int device_usable(rf_vk *vk, VkPhysicalDevice pd, int *fp16)
{
    VkPhysicalDeviceProperties p;
    vk->fn.vkGetPhysicalDeviceProperties(pd, &p);
    if (p.apiVersion < VK_API_VERSION_1_2)
        return 0;
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .pNext = &f11};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12};
    vk->fn.vkGetPhysicalDeviceFeatures2(pd, &f);
    *fp16 = f12.shaderFloat16 && f11.storageBuffer16BitAccess;
    return f12.bufferDeviceAddress;
}

static int pick_device(rf_vk *vk, int index, int require_gpu, rf_err *err)
{
    uint32_t n = 0;
    VkResult r = vk->fn.vkEnumeratePhysicalDevices(vk->instance, &n, NULL);
    if (r != VK_SUCCESS || n == 0)
        return rf_err_set(err, RF_EUNSUP, "vulkan: no device found");
    VkPhysicalDevice *pds = calloc(n, sizeof *pds);
    if (!pds)
        return rf_err_set(err, RF_ENOMEM, "vulkan: out of memory");
    vk->fn.vkEnumeratePhysicalDevices(vk->instance, &n, pds);
    int best = -1, best_rank = -1, best_fp16 = 0;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vk->fn.vkGetPhysicalDeviceProperties(pds[i], &p);
        int fp16 = 0, rank = device_rank(p.deviceType);
        if (!device_usable(vk, pds[i], &fp16))
            continue;
        if (index >= 0 ? (int)i == index : rank > best_rank) {
            best = (int)i;
            best_rank = rank;
            best_fp16 = fp16;
        }
    }
    if (best >= 0)
        vk->physical = pds[best];
    free(pds);
    if (best < 0)
        return index >= 0 ? rf_err_set(err, RF_EUNSUP, "vulkan: device %d does not exist or lacks Vulkan 1.2 "
                                                       "with buffer device addresses (%u devices)", index, n)
                          : rf_err_set(err, RF_EUNSUP, "vulkan: no device with Vulkan 1.2 and buffer device addresses");
    if (require_gpu && best_rank <= 1)
        return rf_err_set(err, RF_EUNSUP, "vulkan: no GPU, only a CPU implementation");
    vk->has_fp16 = best_fp16;
    vk->fn.vkGetPhysicalDeviceProperties(vk->physical, &vk->props);
    vk->fn.vkGetPhysicalDeviceMemoryProperties(vk->physical, &vk->memory_props);
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sub};
    vk->fn.vkGetPhysicalDeviceProperties2(vk->physical, &p2);
    vk->subgroup_size = sub.subgroupSize;
    return RF_OK;
}

static int device_extension(rf_vk *vk, const char *name)
{
    uint32_t n = 0;
    if (vk->fn.vkEnumerateDeviceExtensionProperties(vk->physical, NULL, &n, NULL) != VK_SUCCESS)
        return 0;
    VkExtensionProperties *ext = calloc(n ? n : 1, sizeof *ext);
    if (!ext)
        return 0;
    int found = 0;
    if (vk->fn.vkEnumerateDeviceExtensionProperties(vk->physical, NULL, &n, ext) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(ext[i].extensionName, name) == 0;
    free(ext);
    return found;
}

/* Whether the gemm_coop shaders can run: VK_NV_cooperative_matrix with a
 * 16x16x16 fp16 x fp16 -> fp32 subgroup-scope product in compute shaders,
 * 32-wide subgroups with the basic operations (the shaders split their
 * workgroup into subgroups by gl_SubgroupID), fp16, and the 40 KiB of shared
 * memory the largest tile needs. Lavapipe has none of it. */
static int coopmat_usable(rf_vk *vk)
{
    const char *env = getenv("RADFUSE_VK_COOPMAT");
    if ((env && strcmp(env, "0") == 0) || !vk->has_fp16 || vk->subgroup_size != 32 ||
        !vk->fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV ||
        vk->props.limits.maxComputeSharedMemorySize < 40 * 1024 ||
        !device_extension(vk, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME))
        return 0;
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceCooperativeMatrixPropertiesNV cp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV, .pNext = &sub};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &cp};
    vk->fn.vkGetPhysicalDeviceProperties2(vk->physical, &p2);
    if (!(cp.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ||
        !(sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ||
        !(sub.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT))
        return 0;
    /* glslang declares the Vulkan memory model for these shaders */
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV, .pNext = &f12};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &cf};
    vk->fn.vkGetPhysicalDeviceFeatures2(vk->physical, &f);
    if (!cf.cooperativeMatrix || !f12.vulkanMemoryModel)
        return 0;
    uint32_t n = 0;
    if (vk->fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(vk->physical, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkCooperativeMatrixPropertiesNV *mp = calloc(n, sizeof *mp);
    if (!mp)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        mp[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    int found = 0;
    if (vk->fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(vk->physical, &n, mp) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = mp[i].MSize == 16 && mp[i].NSize == 16 && mp[i].KSize == 16 &&
                    mp[i].AType == VK_COMPONENT_TYPE_FLOAT16_NV && mp[i].BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                    mp[i].CType == VK_COMPONENT_TYPE_FLOAT32_NV && mp[i].DType == VK_COMPONENT_TYPE_FLOAT32_NV &&
                    mp[i].scope == VK_SCOPE_SUBGROUP_NV;
    free(mp);
    return found;
}

/* ---- pipeline cache on disk ---- */

static void cache_path(rf_vk *vk)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[3000];
    if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/radfuse", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.cache/radfuse", home);
    else {
        vk->cache_path[0] = 0;
        return;
    }
    /* one file per device and driver: a cache is only valid for both */
    snprintf(vk->cache_path, sizeof vk->cache_path, "%s/pipelines-%04x-%04x-%08x.bin", dir, vk->props.vendorID,
             vk->props.deviceID, vk->props.driverVersion);
}

static void load_cache(rf_vk *vk)
{
    cache_path(vk);
    void *data = NULL;
    size_t size = 0;
    FILE *f = vk->cache_path[0] ? fopen(vk->cache_path, "rb") : NULL;
    if (f) {
        if (fseek(f, 0, SEEK_END) == 0) {
            long n = ftell(f);
            if (n > 0 && n < (64 << 20) && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)n)) &&
                fread(data, 1, (size_t)n, f) == (size_t)n)
                size = (size_t)n;
        }
        fclose(f);
    }
    /* the driver checks the header and ignores data of another device */
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                    .initialDataSize = size, .pInitialData = size ? data : NULL};
    if (vk->fn.vkCreatePipelineCache(vk->device, &ci, NULL, &vk->cache) != VK_SUCCESS) {
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        vk->fn.vkCreatePipelineCache(vk->device, &ci, NULL, &vk->cache);
    }
    free(data);
}

static void save_cache(rf_vk *vk)
{
    if (!vk->cache || !vk->cache_path[0])
        return;
    size_t size = 0;
    if (vk->fn.vkGetPipelineCacheData(vk->device, vk->cache, &size, NULL) != VK_SUCCESS || size == 0)
        return;
    void *data = malloc(size);
    if (data && vk->fn.vkGetPipelineCacheData(vk->device, vk->cache, &size, data) == VK_SUCCESS) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", vk->cache_path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = 0;
            char *parent = strrchr(dir, '/');
            if (parent) { /* .cache may not exist yet */
                *parent = 0;
                mkdir(dir, 0755);
                *parent = '/';
            }
            mkdir(dir, 0755);
        }
        rf_err ignored; /* a cache that cannot be written only costs time */
        rf_write_file_atomic(vk->cache_path, data, size, &ignored);
    }
    free(data);
}

/* ---- open and close ---- */

int rf_vk_open(rf_vk *vk, int index, int require_gpu, rf_err *err)
{
    memset(vk, 0, sizeof *vk);
    int rc = rf_vk_load(&vk->fn, err);
    if (rc)
        return rc;
    const char *v = getenv("RADFUSE_VK_VALIDATION");
    vk->validation = v && *v && strcmp(v, "0") != 0;
    const char *pr = getenv("RADFUSE_PROFILE");
    vk->profile = pr && *pr && strcmp(pr, "0") != 0;
    const char *layer = "VK_LAYER_KHRONOS_validation";
    const char *ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    if (vk->validation && !layer_available(vk, layer)) {
        rf_vk_close(vk);
        return rf_err_set(err, RF_EUNSUP, "vulkan: RADFUSE_VK_VALIDATION is set but %s is not installed", layer);
    }
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "radfuse",
                             .applicationVersion = 1, .pEngineName = "radfuse", .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app,
                                .enabledLayerCount = vk->validation ? 1 : 0, .ppEnabledLayerNames = &layer,
                                .enabledExtensionCount = vk->validation ? 1 : 0, .ppEnabledExtensionNames = &ext};
    VkResult r = vk->fn.vkCreateInstance(&ici, NULL, &vk->instance);
    if (r != VK_SUCCESS) {
        rf_vk_close(vk);
        return r == VK_ERROR_INCOMPATIBLE_DRIVER ? rf_err_set(err, RF_EUNSUP, "vulkan: no driver installed")
                                                 : vk_fail(err, r, "vkCreateInstance");
    }
    if ((rc = rf_vk_load_instance(&vk->fn, vk->instance, err))) {
        rf_vk_close(vk);
        return rc;
    }
    if (vk->validation && vk->fn.vkCreateDebugUtilsMessengerEXT) {
        VkDebugUtilsMessengerCreateInfoEXT mci = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
            .pfnUserCallback = on_validation, .pUserData = vk};
        vk->fn.vkCreateDebugUtilsMessengerEXT(vk->instance, &mci, NULL, &vk->messenger);
    }
    if ((rc = pick_device(vk, index, require_gpu, err))) {
        rf_vk_close(vk);
        return rc;
    }
    uint32_t nq = 0;
    vk->fn.vkGetPhysicalDeviceQueueFamilyProperties(vk->physical, &nq, NULL);
    VkQueueFamilyProperties *qf = calloc(nq ? nq : 1, sizeof *qf);
    if (!qf) {
        rf_vk_close(vk);
        return rf_err_set(err, RF_ENOMEM, "vulkan: out of memory");
    }
    vk->fn.vkGetPhysicalDeviceQueueFamilyProperties(vk->physical, &nq, qf);
    int family = -1;
    for (uint32_t i = 0; i < nq && family < 0; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
            family = (int)i;
    free(qf);
    if (family < 0) {
        rf_vk_close(vk);
        return rf_err_set(err, RF_EUNSUP, "vulkan: %s has no compute queue", vk->props.deviceName);
    }
    vk->queue_family = (uint32_t)family;
    float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = vk->queue_family, .queueCount = 1,
                                   .pQueuePriorities = &priority};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .storageBuffer16BitAccess = vk->has_fp16};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .pNext = &f11, .bufferDeviceAddress = VK_TRUE,
                                            .shaderFloat16 = vk->has_fp16};
    vk->has_coopmat = coopmat_usable(vk);
    f12.vulkanMemoryModel = vk->has_coopmat ? VK_TRUE : VK_FALSE;
    VkPhysicalDeviceCooperativeMatrixFeaturesNV fcm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV, .pNext = &f12,
        .cooperativeMatrix = VK_TRUE};
    const char *coop_ext = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .pNext = vk->has_coopmat ? (const void *)&fcm : (const void *)&f12,
                              .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci,
                              .enabledExtensionCount = vk->has_coopmat ? 1 : 0,
                              .ppEnabledExtensionNames = &coop_ext};
    if ((r = vk->fn.vkCreateDevice(vk->physical, &dci, NULL, &vk->device)) != VK_SUCCESS) {
        rf_vk_close(vk);
        return vk_fail(err, r, "vkCreateDevice");
    }
    if ((rc = rf_vk_load_device(&vk->fn, vk->device, err))) {
        rf_vk_close(vk);
        return rc;
    }
    vk->fn.vkGetDeviceQueue(vk->device, vk->queue_family, 0, &vk->queue);
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = vk->queue_family};
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkPushConstantRange range = {VK_SHADER_STAGE_COMPUTE_BIT, 0, RF_VK_MAX_PUSH};
    VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                      .pushConstantRangeCount = 1, .pPushConstantRanges = &range};
    if ((r = vk->fn.vkCreateCommandPool(vk->device, &pci, NULL, &vk->command_pool)) != VK_SUCCESS ||
        (cai.commandPool = vk->command_pool,
         (r = vk->fn.vkAllocateCommandBuffers(vk->device, &cai, &vk->cmd)) != VK_SUCCESS) ||
        (r = vk->fn.vkCreateFence(vk->device, &fci, NULL, &vk->fence)) != VK_SUCCESS ||
        (r = vk->fn.vkCreatePipelineLayout(vk->device, &lci, NULL, &vk->layout)) != VK_SUCCESS) {
        rf_vk_close(vk);
        return vk_fail(err, r, "device setup");
    }
    vk->pipelines = calloc((size_t)rf_vk_shader_count, sizeof *vk->pipelines);
    if (!vk->pipelines) {
        rf_vk_close(vk);
        return rf_err_set(err, RF_ENOMEM, "vulkan: out of memory");
    }
    load_cache(vk);
    if (vk->profile) {
        VkQueryPoolCreateInfo qpi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                     .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = 2 * PROFILE_MAX_DISPATCHES};
        vk->profile_entries = calloc(PROFILE_MAX_DISPATCHES, sizeof *vk->profile_entries);
        if (!vk->profile_entries || vk->fn.vkCreateQueryPool(vk->device, &qpi, NULL, &vk->queries) != VK_SUCCESS)
            vk->profile = 0; /* profiling is a diagnostic: run without it */
        vk->profile_cap = PROFILE_MAX_DISPATCHES;
    }
    if ((rc = rf_vk_buffer_create(vk, STAGING_BYTES, 1, &vk->staging, err))) {
        rf_vk_close(vk);
        return rc;
    }
    return RF_OK;
}

void rf_vk_close(rf_vk *vk)
{
    if (vk->device) {
        vk->fn.vkDeviceWaitIdle(vk->device);
        save_cache(vk);
        while (vk->buffers)
            rf_vk_buffer_destroy(vk, vk->buffers);
        for (int i = 0; vk->pipelines && i < rf_vk_shader_count; i++)
            if (vk->pipelines[i])
                vk->fn.vkDestroyPipeline(vk->device, vk->pipelines[i], NULL);
        if (vk->cache)
            vk->fn.vkDestroyPipelineCache(vk->device, vk->cache, NULL);
        if (vk->queries)
            vk->fn.vkDestroyQueryPool(vk->device, vk->queries, NULL);
        if (vk->layout)
            vk->fn.vkDestroyPipelineLayout(vk->device, vk->layout, NULL);
        if (vk->fence)
            vk->fn.vkDestroyFence(vk->device, vk->fence, NULL);
        if (vk->command_pool)
            vk->fn.vkDestroyCommandPool(vk->device, vk->command_pool, NULL);
        vk->fn.vkDestroyDevice(vk->device, NULL);
    }
    if (vk->messenger && vk->fn.vkDestroyDebugUtilsMessengerEXT)
        vk->fn.vkDestroyDebugUtilsMessengerEXT(vk->instance, vk->messenger, NULL);
    if (vk->instance)
        vk->fn.vkDestroyInstance(vk->instance, NULL);
    free(vk->pipelines);
    free(vk->profile_entries);
    rf_vk_unload(&vk->fn);
    memset(vk, 0, sizeof *vk);
}

/* ---- memory ---- */

static int memory_type(rf_vk *vk, uint32_t bits, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < vk->memory_props.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (vk->memory_props.memoryTypes[i].propertyFlags & want) == want)
            return (int)i;
    return -1;
}

int rf_vk_buffer_create(rf_vk *vk, size_t bytes, int host_visible, rf_vk_buffer **out, rf_err *err)
{
    *out = NULL;
    rf_vk_buffer *b = calloc(1, sizeof *b);
    if (!b)
        return rf_err_set(err, RF_ENOMEM, "vulkan: out of memory");
    bytes = (bytes + 255) & ~(size_t)255;
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = bytes,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT |
                                       VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vk->fn.vkCreateBuffer(vk->device, &bci, NULL, &b->buffer);
    if (r != VK_SUCCESS) {
        free(b);
        return vk_fail(err, r, "vkCreateBuffer");
    }
    VkMemoryRequirements req;
    vk->fn.vkGetBufferMemoryRequirements(vk->device, b->buffer, &req);
    int type = host_visible ? memory_type(vk, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                                                      VK_MEMORY_PROPERTY_HOST_COHERENT_BIT)
                            : memory_type(vk, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    if (type < 0 && !host_visible)
        type = memory_type(vk, req.memoryTypeBits, 0);
    VkMemoryAllocateFlagsInfo flags = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
                                       .flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT};
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &flags,
                                .allocationSize = req.size, .memoryTypeIndex = (uint32_t)type};
    if (type < 0 || (r = vk->fn.vkAllocateMemory(vk->device, &mai, NULL, &b->memory)) != VK_SUCCESS) {
        vk->fn.vkDestroyBuffer(vk->device, b->buffer, NULL);
        free(b);
        return type < 0 ? rf_err_set(err, RF_EUNSUP, "vulkan: no suitable memory type")
                        : rf_err_set(err, RF_ENOMEM, "vulkan: cannot allocate %zu bytes of device memory", bytes);
    }
    vk->fn.vkBindBufferMemory(vk->device, b->buffer, b->memory, 0);
    if (host_visible && vk->fn.vkMapMemory(vk->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped) != VK_SUCCESS) {
        vk->fn.vkDestroyBuffer(vk->device, b->buffer, NULL);
        vk->fn.vkFreeMemory(vk->device, b->memory, NULL);
        free(b);
        return rf_err_set(err, RF_EIO, "vulkan: cannot map the staging buffer");
    }
    VkBufferDeviceAddressInfo ai = {.sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO, .buffer = b->buffer};
    b->address = vk->fn.vkGetBufferDeviceAddress(vk->device, &ai);
    b->size = bytes;
    b->next = vk->buffers;
    vk->buffers = b;
    *out = b;
    return RF_OK;
}

void rf_vk_buffer_destroy(rf_vk *vk, rf_vk_buffer *b)
{
    if (!b)
        return;
    for (rf_vk_buffer **p = &vk->buffers; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            break;
        }
    if (vk->staging == b)
        vk->staging = NULL;
    if (vk->scratch == b)
        vk->scratch = NULL;
    if (b->mapped)
        vk->fn.vkUnmapMemory(vk->device, b->memory);
    vk->fn.vkDestroyBuffer(vk->device, b->buffer, NULL);
    vk->fn.vkFreeMemory(vk->device, b->memory, NULL);
    free(b);
}

rf_vk_buffer *rf_vk_buffer_find(rf_vk *vk, VkDeviceAddress address)
{
    for (rf_vk_buffer *b = vk->buffers; b; b = b->next)
        if (address >= b->address && address < b->address + b->size)
            return b;
    return NULL;
}

int rf_vk_scratch(rf_vk *vk, size_t bytes, VkDeviceAddress *address, rf_err *err)
{
    if (!vk->scratch || vk->scratch->size < bytes) {
        if (vk->recording && vk->scratch)
            return rf_err_set(err, RF_EINVAL, "vulkan: scratch must not grow during a pass");
        rf_vk_buffer_destroy(vk, vk->scratch);
        int rc = rf_vk_buffer_create(vk, bytes, 0, &vk->scratch, err);
        if (rc)
            return rc;
    }
    *address = vk->scratch->address;
    return RF_OK;
}

/* ---- one-off copies through staging ---- */

static int submit_and_wait(rf_vk *vk, rf_err *err)
{
    VkResult r = vk->fn.vkEndCommandBuffer(vk->cmd);
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &vk->cmd};
    if (r == VK_SUCCESS)
        r = vk->fn.vkQueueSubmit(vk->queue, 1, &si, vk->fence);
    if (r == VK_SUCCESS)
        r = vk->fn.vkWaitForFences(vk->device, 1, &vk->fence, VK_TRUE, UINT64_MAX);
    vk->fn.vkResetFences(vk->device, 1, &vk->fence);
    vk->fn.vkResetCommandBuffer(vk->cmd, 0);
    if (r != VK_SUCCESS)
        return vk_fail(err, r, "queue submit");
    if (vk->validation_messages)
        return rf_err_set(err, RF_EIO, "vulkan validation: %s", vk->validation_first);
    return RF_OK;
}

static int begin_commands(rf_vk *vk, rf_err *err)
{
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vk->fn.vkBeginCommandBuffer(vk->cmd, &bi);
    return r == VK_SUCCESS ? RF_OK : vk_fail(err, r, "vkBeginCommandBuffer");
}

int rf_vk_write(rf_vk *vk, VkDeviceAddress dst, const void *src, size_t bytes, rf_err *err)
{
    if (vk->recording)
        return rf_err_set(err, RF_EINVAL, "vulkan: upload during a pass");
    rf_vk_buffer *b = rf_vk_buffer_find(vk, dst);
    if (!b || dst + bytes > b->address + b->size)
        return rf_err_set(err, RF_EINVAL, "vulkan: upload outside any buffer");
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < vk->staging->size ? bytes - done : vk->staging->size;
        memcpy(vk->staging->mapped, (const char *)src + done, n);
        int rc = begin_commands(vk, err);
        if (rc)
            return rc;
        VkBufferCopy region = {0, dst - b->address + done, n};
        vk->fn.vkCmdCopyBuffer(vk->cmd, vk->staging->buffer, b->buffer, 1, &region);
        if ((rc = submit_and_wait(vk, err)))
            return rc;
        done += n;
    }
    return RF_OK;
}

int rf_vk_read(rf_vk *vk, void *dst, VkDeviceAddress src, size_t row_bytes, size_t rows, size_t src_pitch,
               rf_err *err)
{
    if (vk->recording)
        return rf_err_set(err, RF_EINVAL, "vulkan: download during a pass");
    rf_vk_buffer *b = rf_vk_buffer_find(vk, src);
    size_t span = rows ? (rows - 1) * src_pitch + row_bytes : 0;
    if (!b || src + span > b->address + b->size)
        return rf_err_set(err, RF_EINVAL, "vulkan: download outside any buffer");
    if (rows > 1 && src_pitch == row_bytes) { /* contiguous rows are one long row */
        row_bytes *= rows;
        rows = 1;
    }
    if (row_bytes > vk->staging->size) { /* longer than the staging buffer: each row in pieces */
        for (size_t r = 0; r < rows; r++)
            for (size_t done = 0; done < row_bytes;) {
                size_t n = row_bytes - done < vk->staging->size ? row_bytes - done : vk->staging->size;
                int rc = rf_vk_read(vk, (char *)dst + r * row_bytes + done, src + r * src_pitch + done, n, 1, n,
                                    err);
                if (rc)
                    return rc;
                done += n;
            }
        return RF_OK;
    }
    size_t per = vk->staging->size / row_bytes; /* rows per round trip */
    VkBufferCopy regions[256];
    for (size_t r0 = 0; r0 < rows;) {
        size_t nr = rows - r0 < per ? rows - r0 : per;
        int rc = begin_commands(vk, err);
        if (rc)
            return rc;
        if (src_pitch == row_bytes) { /* contiguous: one region */
            VkBufferCopy region = {src - b->address + r0 * src_pitch, 0, nr * row_bytes};
            vk->fn.vkCmdCopyBuffer(vk->cmd, b->buffer, vk->staging->buffer, 1, &region);
        } else {
            for (size_t i = 0; i < nr; i += 256) {
                uint32_t k = (uint32_t)(nr - i < 256 ? nr - i : 256);
                for (uint32_t j = 0; j < k; j++)
                    regions[j] = (VkBufferCopy){src - b->address + (r0 + i + j) * src_pitch, (i + j) * row_bytes,
                                                row_bytes};
                vk->fn.vkCmdCopyBuffer(vk->cmd, b->buffer, vk->staging->buffer, k, regions);
            }
        }
        if ((rc = submit_and_wait(vk, err)))
            return rc;
        memcpy((char *)dst + r0 * row_bytes, vk->staging->mapped, nr * row_bytes);
        r0 += nr;
    }
    return RF_OK;
}

/* ---- passes and dispatches ---- */

int rf_vk_begin(rf_vk *vk, rf_err *err)
{
    if (vk->recording)
        return rf_err_set(err, RF_EINVAL, "vulkan: a pass is already being recorded");
    int rc = begin_commands(vk, err);
    if (rc)
        return rc;
    vk->recording = 1;
    vk->profile_count = 0;
    if (vk->profile)
        vk->fn.vkCmdResetQueryPool(vk->cmd, vk->queries, 0, 2 * vk->profile_cap);
    return RF_OK;
}

static void print_profile(rf_vk *vk)
{
    uint32_t n = vk->profile_count;
    uint64_t *ts = calloc(2 * (size_t)n + 1, sizeof *ts);
    double *per_shader = calloc((size_t)rf_vk_shader_count, sizeof *per_shader);
    int *calls = calloc((size_t)rf_vk_shader_count, sizeof *calls);
    if (ts && per_shader && calls && n &&
        vk->fn.vkGetQueryPoolResults(vk->device, vk->queries, 0, 2 * n, 2 * n * sizeof *ts, ts, sizeof *ts,
                                     VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS) {
        double total = 0;
        for (uint32_t i = 0; i < n; i++) {
            double ms = (double)(ts[2 * i + 1] - ts[2 * i]) * vk->props.limits.timestampPeriod * 1e-6;
            per_shader[vk->profile_entries[i].shader] += ms;
            calls[vk->profile_entries[i].shader]++;
            total += ms;
        }
        fprintf(stderr, "radfuse profile: %u dispatches, %.3f ms of GPU time on %s\n", n, total,
                vk->props.deviceName);
        for (int s = 0; s < rf_vk_shader_count; s++)
            if (calls[s])
                fprintf(stderr, "  %-20s %6d calls %10.3f ms %5.1f%%\n", rf_vk_shaders[s].name, calls[s],
                        per_shader[s], total > 0 ? 100 * per_shader[s] / total : 0);
    }
    free(ts);
    free(per_shader);
    free(calls);
}

int rf_vk_end(rf_vk *vk, int submit, rf_err *err)
{
    if (!vk->recording)
        return rf_err_set(err, RF_EINVAL, "vulkan: no pass is being recorded");
    vk->recording = 0;
    if (!submit) {
        vk->fn.vkEndCommandBuffer(vk->cmd);
        vk->fn.vkResetCommandBuffer(vk->cmd, 0);
        return RF_OK;
    }
    int rc = submit_and_wait(vk, err);
    if (!rc && vk->profile)
        print_profile(vk);
    return rc;
}

static VkPipeline pipeline_for(rf_vk *vk, const char *shader, int *index, rf_err *err)
{
    int i = 0;
    while (i < rf_vk_shader_count && strcmp(rf_vk_shaders[i].name, shader) != 0)
        i++;
    if (i == rf_vk_shader_count) {
        rf_err_set(err, RF_EUNSUP, "vulkan: no shader named '%s' is built in", shader);
        return VK_NULL_HANDLE;
    }
    *index = i;
    if (vk->pipelines[i])
        return vk->pipelines[i];
    VkShaderModuleCreateInfo smi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = rf_vk_shaders[i].size,
                                    .pCode = (const uint32_t *)(const void *)rf_vk_shaders[i].spirv};
    VkShaderModule module;
    VkResult r = vk->fn.vkCreateShaderModule(vk->device, &smi, NULL, &module);
    if (r != VK_SUCCESS) {
        vk_fail(err, r, "vkCreateShaderModule");
        return VK_NULL_HANDLE;
    }
    VkComputePipelineCreateInfo cpi = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = module, .pName = "main"},
        .layout = vk->layout};
    r = vk->fn.vkCreateComputePipelines(vk->device, vk->cache, 1, &cpi, NULL, &vk->pipelines[i]);
    vk->fn.vkDestroyShaderModule(vk->device, module, NULL);
    if (r != VK_SUCCESS) {
        vk->pipelines[i] = VK_NULL_HANDLE;
        vk_fail(err, r, "vkCreateComputePipelines");
    }
    return vk->pipelines[i];
}

int rf_vk_dispatch(rf_vk *vk, const char *shader, const void *params, size_t params_size, uint32_t gx,
                   uint32_t gy, uint32_t gz, rf_err *err)
{
    if (!vk->recording)
        return rf_err_set(err, RF_EINVAL, "vulkan: dispatch of '%s' outside a pass", shader);
    if (params_size > RF_VK_MAX_PUSH)
        return rf_err_set(err, RF_EINVAL, "vulkan: '%s' push constants of %zu bytes exceed %d", shader, params_size,
                          RF_VK_MAX_PUSH);
    const uint32_t *limit = vk->props.limits.maxComputeWorkGroupCount;
    if (gx == 0 || gy == 0 || gz == 0)
        return RF_OK; /* nothing to do */
    if (gx > limit[0] || gy > limit[1] || gz > limit[2])
        return rf_err_set(err, RF_EUNSUP, "vulkan: '%s' needs %ux%ux%u workgroups, the device allows %ux%ux%u",
                          shader, gx, gy, gz, limit[0], limit[1], limit[2]);
    int index = 0;
    VkPipeline pipe = pipeline_for(vk, shader, &index, err);
    if (!pipe)
        return RF_EUNSUP;
    int timed = vk->profile && vk->profile_count < vk->profile_cap;
    if (timed) {
        vk->profile_entries[vk->profile_count] = (rf_vk_profile_entry){index, 2 * vk->profile_count};
        vk->fn.vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, vk->queries, 2 * vk->profile_count);
    }
    vk->fn.vkCmdBindPipeline(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    vk->fn.vkCmdPushConstants(vk->cmd, vk->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, (uint32_t)params_size, params);
    vk->fn.vkCmdDispatch(vk->cmd, gx, gy, gz);
    /* every dispatch may read what the previous one wrote */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    vk->fn.vkCmdPipelineBarrier(vk->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0,
                                1, &mb, 0, NULL, 0, NULL);
    if (timed) {
        vk->fn.vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vk->queries,
                                   2 * vk->profile_count + 1);
        vk->profile_count++;
    }
    return RF_OK;
}
