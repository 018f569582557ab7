/* Backend selection by device name; each backend lives in its own files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/vk_device.h"

static int cpu_fallback(rf_backend **out, int threads, const char *why, rf_err *err)
{
    int rc = rf_cpu_backend_create(out, threads, err);
    if (!rc && why)
        snprintf((*out)->warning, sizeof (*out)->warning, "%.480s; running on the CPU", why);
    return rc;
}

int rf_backend_create(rf_backend **out, const char *name, int threads, rf_err *err)
{
    *out = NULL;
    if (!name || !*name)
        name = "auto";
    if (strcmp(name, "cpu") == 0)
        return rf_cpu_backend_create(out, threads, err);
    rf_err why;
    if (strcmp(name, "auto") == 0) {
        /* a GPU when there is one; the CPU backend beats a CPU Vulkan driver */
        if (rf_vk_backend_create(out, -1, 1, &why) == RF_OK)
            return RF_OK;
        return rf_cpu_backend_create(out, threads, err);
    }
    int index = -1;
    if (strncmp(name, "vulkan", 6) == 0 && (name[6] == 0 || name[6] == ':')) {
        if (name[6] == ':') {
            char *end;
            long v = strtol(name + 7, &end, 10);
            if (!name[7] || *end || v < 0 || v > 64)
                return rf_err_set(err, RF_EINVAL, "device '%s': expected vulkan:N with N a device index", name);
            index = (int)v;
        }
        if (rf_vk_backend_create(out, index, 0, &why) == RF_OK)
            return RF_OK;
        return cpu_fallback(out, threads, why.msg, err);
    }
    return rf_err_set(err, RF_EUNSUP, "unknown device '%s' (cpu, vulkan, vulkan:N, auto)", name);
}

void rf_backend_destroy(rf_backend *be)
{
    if (be)
        be->ops->destroy(be);
}

const char *rf_backend_name(const rf_backend *be)
{
    return be->description[0] ? be->description : be->ops->name;
}

const char *rf_backend_warning(const rf_backend *be)
{
    return be->warning[0] ? be->warning : NULL;
}

int rf_backend_set_precision(rf_backend *be, rf_precision p, rf_err *err)
{
    if (p != RF_PRECISION_FP32 && p != RF_PRECISION_FP16)
        return rf_err_set(err, RF_EINVAL, "precision %d is not fp32 (0) or fp16 (1)", (int)p);
    if (be->ops->set_precision)
        return be->ops->set_precision(be, p, err);
    if (p != RF_PRECISION_FP32)
        return rf_err_set(err, RF_EUNSUP, "%s: fp16 precision is not supported", rf_backend_name(be));
    return RF_OK;
}
