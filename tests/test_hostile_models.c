/*
 * Hostile model directories and inputs through the radfuse command: each must
 * end with exit status 2 and exactly one line on stderr naming the file and
 * the problem; never a crash (under the sanitizer build, any ASan or UBSan
 * report aborts the child and fails the exit-status check).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testutil.h"

static char tmp[64];
static const char *shared;

/* Builds a safetensors file from a header JSON string and data bytes. */
static void write_st(const char *path, const char *header, size_t data_len)
{
    size_t hlen = strlen(header);
    size_t total = 8 + hlen + data_len;
    unsigned char *buf = calloc(1, total);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    test_write_file(path, buf, total);
    free(buf);
}

/* A model directory named name holding config (malloc'd; freed here), or no config when NULL. */
static void make_dir(char *dir, size_t n, const char *name, char *config)
{
    snprintf(dir, n, "%s/%s", tmp, name);
    mkdir(dir, 0755);
    if (config) {
        char path[4200];
        snprintf(path, sizeof path, "%s/config.json", dir);
        test_write_file(path, config, strlen(config));
        free(config);
    }
}

static char *fixture_config(const char *fixture)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/fixtures/reference/%s/config.json", shared, fixture);
    char *text = test_read_file(path, NULL);
    if (!text) {
        fprintf(stderr, "FATAL: cannot read %s\n", path);
        exit(1);
    }
    return text;
}

/* Copies the fixture's model.safetensors into dir, keeping the first keep bytes (0: all). */
static void copy_weights(const char *dir, const char *fixture, size_t keep)
{
    char src[4200], dst[4200];
    snprintf(src, sizeof src, "%s/fixtures/reference/%s/model.safetensors", shared, fixture);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    size_t n = 0;
    char *data = test_read_file(src, &n);
    if (!data) {
        fprintf(stderr, "FATAL: cannot read %s\n", src);
        exit(1);
    }
    test_write_file(dst, data, keep && keep < n ? keep : n);
    free(data);
}

/* Replaces the first occurrence of from with to in a malloc'd string. */
static char *replace(char *s, const char *from, const char *to)
{
    char *at = strstr(s, from);
    if (!at) {
        fprintf(stderr, "FATAL: '%s' not in the fixture config\n", from);
        exit(1);
    }
    size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    free(s);
    return out;
}

/* Runs radfuse with args and checks: status 2, one stderr line that contains
 * every string in must (NULL-terminated). */
static void expect_failure(const char *what, char **args, const char *const *must)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)test_radfuse_bin();
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char out[4096], err[8192];
    int status = test_run(argv, out, sizeof out, err, sizeof err);
    printf("  %-28s exit %d: %s", what, status, err);
    CHECKF(status == 2, "%s: exit status %d, want 2 (stderr: %s)", what, status, err);
    CHECKF(test_count_lines(err) == 1, "%s: stderr has %d lines, want 1: %s", what, test_count_lines(err), err);
    CHECKF(strncmp(err, "radfuse: ", 9) == 0, "%s: message does not start with 'radfuse: ': %s", what, err);
    for (int i = 0; must[i]; i++)
        CHECKF(strstr(err, must[i]) != NULL, "%s: message lacks '%s': %s", what, must[i], err);
}

static void info_fails(const char *what, const char *dir, const char *const *must)
{
    char *args[] = {"model", "info", (char *)dir, NULL};
    expect_failure(what, args, must);
}

int main(void)
{
    shared = test_shared_dir();
    test_tmpdir(tmp, sizeof tmp);
    /* these cases are about files, not devices: keep the default device off
     * Vulkan so a driver's own leaks cannot mask ours under LeakSanitizer */
    setenv("RADFUSE_DEVICE", "cpu", 1);
    char dir[4096], path[4200];
    const char *hf_vit_weights_name = "model.safetensors";

    /* --- weight files --- */
    make_dir(dir, sizeof dir, "truncated", fixture_config("hf_vit"));
    copy_weights(dir, "hf_vit", 4000);
    info_fails("truncated safetensors", dir, (const char *const[]){hf_vit_weights_name, "past the end", NULL});

    make_dir(dir, sizeof dir, "tiny-file", fixture_config("hf_vit"));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    test_write_file(path, "abc", 3);
    info_fails("3-byte safetensors", dir, (const char *const[]){hf_vit_weights_name, NULL});

    make_dir(dir, sizeof dir, "offsets", fixture_config("hf_vit"));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    info_fails("offsets past the end", dir, (const char *const[]){hf_vit_weights_name, "'a'", NULL});

    make_dir(dir, sizeof dir, "overlap", fixture_config("hf_vit"));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
             24);
    info_fails("overlapping tensors", dir, (const char *const[]){hf_vit_weights_name, "overlap", NULL});

    make_dir(dir, sizeof dir, "size-mismatch", fixture_config("hf_vit"));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[0,16]}}", 16);
    info_fails("shape/size mismatch", dir, (const char *const[]){hf_vit_weights_name, "'a'", NULL});

    make_dir(dir, sizeof dir, "size-mismatch-2", fixture_config("hf_vit"));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16);
    info_fails("byte size != shape x dtype", dir, (const char *const[]){hf_vit_weights_name, "'a'", NULL});

    make_dir(dir, sizeof dir, "huge-product", fixture_config("hf_vit"));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1073741824,1073741824],\"data_offsets\":[0,16]}}", 16);
    info_fails("2^60 elements as a product", dir, (const char *const[]){hf_vit_weights_name, "'a'", NULL});

    make_dir(dir, sizeof dir, "huge-shape", fixture_config("hf_vit"));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1152921504606846976],\"data_offsets\":[0,16]}}", 16);
    info_fails("2^60-element shape", dir, (const char *const[]){hf_vit_weights_name, "'a'", NULL});

    make_dir(dir, sizeof dir, "not-json", fixture_config("hf_vit"));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path, "this is not json at all", 0);
    info_fails("non-JSON header", dir, (const char *const[]){hf_vit_weights_name, "JSON", NULL});

    make_dir(dir, sizeof dir, "no-weights", fixture_config("hf_vit"));
    info_fails("missing weights file", dir, (const char *const[]){hf_vit_weights_name, NULL});

    /* --- config.json --- */
    make_dir(dir, sizeof dir, "missing-key", replace(fixture_config("hf_vit"), "\"hidden_size\"", "\"hidden_sz\""));
    copy_weights(dir, "hf_vit", 0);
    info_fails("missing config key", dir, (const char *const[]){"config.json", "hidden_size", NULL});

    make_dir(dir, sizeof dir, "unknown-arch", replace(fixture_config("hf_vit"), "\"model_type\": \"vit\"",
                                                     "\"model_type\": \"gpt2\""));
    copy_weights(dir, "hf_vit", 0);
    info_fails("unknown architecture", dir, (const char *const[]){"config.json", "gpt2", NULL});

    make_dir(dir, sizeof dir, "timm-unknown", strdup("{\"architecture\": \"resnet50\"}"));
    copy_weights(dir, "timm_vit", 0);
    info_fails("unknown timm architecture", dir, (const char *const[]){"config.json", "resnet50", NULL});

    make_dir(dir, sizeof dir, "config-not-json", strdup("{\"model_type\": "));
    copy_weights(dir, "hf_vit", 0);
    info_fails("config not JSON", dir, (const char *const[]){"config.json", "JSON", NULL});

    make_dir(dir, sizeof dir, "no-config", NULL);
    copy_weights(dir, "hf_vit", 0);
    info_fails("missing config.json", dir, (const char *const[]){"config.json", NULL});

    make_dir(dir, sizeof dir, "bad-type", replace(fixture_config("bert"), "\"num_attention_heads\": 4",
                                                 "\"num_attention_heads\": \"four\""));
    copy_weights(dir, "bert", 0);
    info_fails("wrong key type", dir, (const char *const[]){"config.json", "num_attention_heads", NULL});

    make_dir(dir, sizeof dir, "wrong-size", replace(fixture_config("bert"), "\"intermediate_size\": 128",
                                                   "\"intermediate_size\": 100"));
    copy_weights(dir, "bert", 0);
    info_fails("config/weights disagree", dir,
               (const char *const[]){"wrong-size/model.safetensors", "intermediate.dense.weight", "shape", NULL});

    make_dir(dir, sizeof dir, "too-many-layers", replace(fixture_config("hf_vit"), "\"num_hidden_layers\": 2",
                                                        "\"num_hidden_layers\": 3"));
    copy_weights(dir, "hf_vit", 0);
    info_fails("missing layer tensors", dir, (const char *const[]){"missing tensor", "layers.2.", NULL});

    make_dir(dir, sizeof dir, "wrong-family", fixture_config("bert"));
    copy_weights(dir, "hf_vit", 0);
    info_fails("weights of another family", dir, (const char *const[]){"word_embeddings", NULL});

    /* --- inputs to model run --- */
    char model[4200], io[4200], out[4200];
    snprintf(model, sizeof model, "%s/fixtures/reference/hf_vit", shared);
    snprintf(io, sizeof io, "%s/fixtures/reference/bert/io.safetensors", shared);
    snprintf(out, sizeof out, "%s/out.safetensors", tmp);
    char *run_text_on_vision[] = {"model", "run", model, "--input", io, "--output", out, NULL};
    expect_failure("text input to a vision model", run_text_on_vision,
                   (const char *const[]){"io.safetensors", "pixel_values", NULL});

    snprintf(model, sizeof model, "%s/fixtures/reference/timm_vit", shared);
    snprintf(io, sizeof io, "%s/fixtures/reference/hf_vit/io.safetensors", shared);
    char *run_wrong_channels[] = {"model", "run", model, "--input", io, "--output", out, NULL};
    expect_failure("3-channel image, 1-channel model", run_wrong_channels,
                   (const char *const[]){"hf_vit/io.safetensors", "channels", NULL});

    snprintf(path, sizeof path, "%s/ids.safetensors", tmp);
    {
        /* an out-of-vocabulary token id */
        int32_t ids[4] = {1, 2, 99999, 3};
        int64_t shape[2] = {1, 4};
        rf_st_out t = {"input_ids", RF_ST_I32, 2, shape, ids};
        rf_err e;
        CHECKF(rf_safetensors_write(path, &t, 1, &e) == 0, "%s", e.msg);
    }
    snprintf(model, sizeof model, "%s/fixtures/reference/bert", shared);
    char *run_bad_ids[] = {"model", "run", model, "--input", path, "--output", out, NULL};
    expect_failure("token id outside vocabulary", run_bad_ids, (const char *const[]){"ids.safetensors", "input_ids", "99999", NULL});

    char *run_missing_input[] = {"model", "run", model, "--input", "/nonexistent/in.safetensors", "--output",
                                 out, NULL};
    expect_failure("missing input file", run_missing_input, (const char *const[]){"/nonexistent/in.safetensors", NULL});

    char *run_bad_device[] = {"model", "run", model, "--input", path, "--output", out, "--device", "tpu", NULL};
    expect_failure("unknown device", run_bad_device, (const char *const[]){"tpu", NULL});

    char *bad_threads[] = {"model", "run", model, "--input", path, "--output", out, "--threads", "zero", NULL};
    expect_failure("bad --threads", bad_threads, (const char *const[]){"--threads", NULL});

    char *unknown_cmd[] = {"frobnicate", NULL};
    expect_failure("unknown command", unknown_cmd, (const char *const[]){"frobnicate", NULL});

    CHECKF(access(out, F_OK) != 0, "a failed run left an output file behind");

    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return test_finish("test_hostile_models");
}
