/* Backend selection by device name; each backend lives in its own file. */
#include <string.h>

#include "runtime/backend.h"

int rf_backend_create(rf_backend **out, const char *name, int threads, rf_err *err)
{
    *out = NULL;
    if (!name || strcmp(name, "cpu") == 0)
        return rf_cpu_backend_create(out, threads, err);
    return rf_err_set(err, RF_EUNSUP, "unknown device '%s' (available: cpu)", name);
}

void rf_backend_destroy(rf_backend *be)
{
    if (be)
        be->ops->destroy(be);
}

const char *rf_backend_name(const rf_backend *be)
{
    return be->ops->name;
}
