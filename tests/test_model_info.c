/*
 * radfuse model info --json on every reference checkpoint: architecture and
 * sizes as the config states them, parameter count equal to the elements of
 * every stored tensor the architecture uses (counted independently here from
 * the file), and SHA-256 equal to coreutils' sha256sum. Also SHA-256 itself
 * on the FIPS 180-4 test vectors.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sha256.h"
#include "tests/testutil.h"

typedef struct expect {
    const char *fixture, *arch;
    int hidden, layers, heads;
    const char *unused; /* a stored tensor the encoder does not use, or NULL */
} expect;

static const expect cases[] = {
    {"dinov2", "Dinov2Model", 64, 2, 4, "embeddings.mask_token"},
    {"bert", "BertModel", 64, 2, 4, NULL},
    {"hf_vit", "ViTModel", 64, 2, 4, NULL},
    {"timm_vit", "timm VisionTransformer", 64, 2, 4, NULL},
};

static void sha_vectors(void)
{
    struct {
        const char *msg;
        size_t repeat;
        const char *hex;
    } v[] = {
        {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        rf_sha256 s;
        rf_sha256_init(&s);
        for (size_t r = 0; r < v[i].repeat; r++)
            rf_sha256_update(&s, v[i].msg, strlen(v[i].msg));
        uint8_t d[32];
        char hex[65];
        rf_sha256_final(&s, d);
        rf_sha256_hex(d, hex);
        CHECKF(strcmp(hex, v[i].hex) == 0, "sha256 vector %zu: %s", i, hex);
    }
}

int main(void)
{
    const char *shared = test_shared_dir();
    sha_vectors();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char dir[4096], weights[4200];
        snprintf(dir, sizeof dir, "%s/fixtures/reference/%s", shared, cases[c].fixture);
        snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
        char *argv[] = {(char *)test_radfuse_bin(), "model", "info", dir, "--json", NULL};
        char out[16384], err[4096];
        int status = test_run(argv, out, sizeof out, err, sizeof err);
        CHECKF(status == 0, "%s: exit %d: %s", cases[c].fixture, status, err);
        cJSON *j = cJSON_Parse(out);
        CHECKF(j != NULL, "%s: output is not JSON: %s", cases[c].fixture, out);
        if (!j)
            continue;
        const cJSON *arch = cJSON_GetObjectItem(j, "architecture");
        CHECKF(cJSON_IsString(arch) && strcmp(arch->valuestring, cases[c].arch) == 0, "%s: architecture",
               cases[c].fixture);
        CHECK(cJSON_GetObjectItem(j, "hidden_size")->valueint == cases[c].hidden);
        CHECK(cJSON_GetObjectItem(j, "layers")->valueint == cases[c].layers);
        CHECK(cJSON_GetObjectItem(j, "heads")->valueint == cases[c].heads);

        /* parameters: every stored element but the unused tensor's */
        rf_safetensors *st;
        rf_err e;
        CHECKF(rf_safetensors_open(&st, weights, &e) == 0, "%s", e.msg);
        double expected = 0;
        for (size_t i = 0; i < rf_safetensors_count(st); i++) {
            const rf_st_tensor *t = rf_safetensors_at(st, i);
            if (cases[c].unused && strcmp(t->name, cases[c].unused) == 0)
                continue;
            expected += (double)(t->nbytes / rf_st_dtype_size(t->dtype));
        }
        double tensors = (double)rf_safetensors_count(st);
        rf_safetensors_close(st);
        CHECKF(cJSON_GetObjectItem(j, "parameters")->valuedouble == expected, "%s: parameters %.0f, want %.0f",
               cases[c].fixture, cJSON_GetObjectItem(j, "parameters")->valuedouble, expected);
        CHECK(cJSON_GetObjectItem(j, "tensors")->valuedouble == tensors);

        /* sha256 against coreutils */
        char cmd[4400], line[256] = {0};
        snprintf(cmd, sizeof cmd, "sha256sum '%s'", weights);
        FILE *p = popen(cmd, "r");
        CHECK(p && fgets(line, sizeof line, p));
        if (p)
            pclose(p);
        const cJSON *w = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "weights"), 0);
        const cJSON *sha = w ? cJSON_GetObjectItem(w, "sha256") : NULL;
        CHECKF(cJSON_IsString(sha) && strncmp(sha->valuestring, line, 64) == 0, "%s: sha256 %s vs %.64s",
               cases[c].fixture, cJSON_IsString(sha) ? sha->valuestring : "?", line);
        cJSON_Delete(j);
    }
    return test_finish("test_model_info");
}
