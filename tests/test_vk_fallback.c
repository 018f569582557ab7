/*
 * Vulkan asked for where it cannot run: no loader, no driver, no such device.
 * radfuse must go on with the CPU backend, say so in exactly one warning line,
 * exit 0 and still compute the right answer (the BERT fixture against
 * PyTorch, max abs error <= 1e-4). "auto" without Vulkan stays silent.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

static const char *shared;
static char tmp[64];

static void run_case(const char *what, const char *env_name, const char *env_value, const char *device,
                     int expect_warning)
{
    char dir[4096], io[4200], out[4200];
    snprintf(dir, sizeof dir, "%s/fixtures/reference/bert", shared);
    snprintf(io, sizeof io, "%s/io.safetensors", dir);
    snprintf(out, sizeof out, "%s/out.safetensors", tmp);
    unlink(out);
    if (env_name)
        setenv(env_name, env_value, 1);
    char *argv[] = {(char *)test_radfuse_bin(), "model", "run", dir, "--input", io, "--output", out,
                    "--device", (char *)device, NULL};
    char errbuf[4096];
    int status = test_run(argv, NULL, 0, errbuf, sizeof errbuf);
    if (env_name)
        unsetenv(env_name);
    printf("  %-28s exit %d: %s%s", what, status, errbuf, errbuf[0] ? "" : "(silent)\n");
    CHECKF(status == 0, "%s: exit %d: %s", what, status, errbuf);
    if (expect_warning) {
        CHECKF(test_count_lines(errbuf) == 1, "%s: want one warning line, got: %s", what, errbuf);
        CHECKF(strstr(errbuf, "radfuse: warning: ") == errbuf && strstr(errbuf, "running on the CPU"),
               "%s: not the fallback warning: %s", what, errbuf);
    } else {
        CHECKF(errbuf[0] == 0, "%s: want no message, got: %s", what, errbuf);
    }
    rf_safetensors *ref = NULL, *got = NULL;
    rf_err err;
    if (status == 0 && rf_safetensors_open(&ref, io, &err) == 0 && rf_safetensors_open(&got, out, &err) == 0) {
        const rf_st_tensor *r = rf_safetensors_find(ref, "last_hidden_state");
        const rf_st_tensor *g = rf_safetensors_find(got, "last_hidden_state");
        CHECK(r && g && r->nbytes == g->nbytes);
        if (r && g && r->nbytes == g->nbytes) {
            float *a = malloc(r->nbytes), *b = malloc(g->nbytes);
            memcpy(a, r->data, r->nbytes);
            memcpy(b, g->data, g->nbytes);
            CHECKF(test_max_abs_diff(a, b, (int64_t)(r->nbytes / 4)) <= 1e-4, "%s: wrong result", what);
            free(a);
            free(b);
        }
    } else {
        CHECKF(0, "%s: no output to check", what);
    }
    rf_safetensors_close(ref);
    rf_safetensors_close(got);
}

int main(void)
{
    shared = test_shared_dir();
    test_tmpdir(tmp, sizeof tmp);
    run_case("no Vulkan loader", "RADFUSE_VULKAN_LOADER", "/nonexistent/libvulkan.so.1", "vulkan", 1);
    run_case("no Vulkan driver", "VK_ICD_FILENAMES", "/nonexistent/icd.json", "vulkan", 1);
    run_case("no such device", NULL, NULL, "vulkan:7", 1);
    run_case("auto without a loader", "RADFUSE_VULKAN_LOADER", "/nonexistent/libvulkan.so.1", "auto", 0);
    run_case("auto with only lavapipe", NULL, NULL, "auto", 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return test_finish("test_vk_fallback");
}
