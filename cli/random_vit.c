/* Random-weight timm ViT checkpoints of the real shapes, for demos and benchmarks. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "runtime/fileio.h"

typedef struct vit_size {
    const char *name;
    int embed, depth, heads;
} vit_size;

static const vit_size sizes[] = {
    {"tiny", 192, 12, 3}, {"small", 384, 12, 6}, {"base", 768, 12, 12}, {"large", 1024, 24, 16}};

/* Parses vit_<size>_patch<P>_<IMG>[.tag]. */
static int parse_arch(const char *arch, const vit_size **size, int *patch, int *img)
{
    char name[32];
    int n = 0;
    if (sscanf(arch, "vit_%31[a-z]_patch%d_%d%n", name, patch, img, &n) != 3 ||
        (arch[n] && arch[n] != '.'))
        return 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (strcmp(sizes[i].name, name) == 0) {
            *size = &sizes[i];
            return *patch > 0 && *patch <= 64 && *img >= *patch && *img <= 4096 && *img % *patch == 0;
        }
    return 0;
}

typedef struct rng {
    uint64_t s;
} rng;

/* Uniform with standard deviation std (xorshift64*). */
static float rng_next(rng *r, float std)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    uint64_t v = r->s * 0x2545F4914F6CDD1Dull;
    float u = (float)(v >> 40) / 16777216.0f; /* [0, 1) */
    return (2.0f * u - 1.0f) * std * 1.7320508f;
}

typedef struct builder {
    rf_st_out items[512];
    int64_t shapes[512][4];
    int n;
    float *data;
    size_t used, cap;
    rng r;
} builder;

static void add(builder *b, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                float std, float fill)
{
    int64_t dims[4] = {d0, d1, d2, d3};
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        b->shapes[b->n][i] = dims[i];
        count *= (size_t)dims[i];
    }
    float *p = b->data + b->used;
    for (size_t i = 0; i < count; i++)
        p[i] = std > 0 ? rng_next(&b->r, std) : fill;
    b->items[b->n] = (rf_st_out){strdup(name), RF_ST_F32, ndim, b->shapes[b->n], p};
    b->used += count;
    b->n++;
}

static void add_linear(builder *b, const char *prefix, int64_t out, int64_t in)
{
    char name[128];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add(b, name, 2, out, in, 0, 0, 0.02f, 0);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add(b, name, 1, out, 0, 0, 0, 0.0f, 0);
}

static void add_norm(builder *b, const char *prefix, int64_t n)
{
    char name[128];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add(b, name, 1, n, 0, 0, 0, 0, 1.0f);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add(b, name, 1, n, 0, 0, 0, 0, 0.0f);
}

static int write_config(const char *dir, const char *arch, const vit_size *s, int patch, int img,
                        int classes, rf_err *err)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "architecture", arch);
    cJSON_AddNumberToObject(c, "num_classes", classes);
    cJSON_AddStringToObject(c, "global_pool", "token");
    cJSON_AddNumberToObject(c, "img_size", img);
    cJSON_AddNumberToObject(c, "patch_size", patch);
    cJSON_AddNumberToObject(c, "in_chans", 3);
    cJSON_AddNumberToObject(c, "embed_dim", s->embed);
    cJSON_AddNumberToObject(c, "depth", s->depth);
    cJSON_AddNumberToObject(c, "num_heads", s->heads);
    cJSON_AddNumberToObject(c, "mlp_ratio", 4.0);
    cJSON_AddStringToObject(c, "note", "random weights of the real shapes; not a trained model");
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    if (!text)
        return rf_err_set(err, RF_ENOMEM, "cannot format config.json");
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = rf_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

int cli_write_random_vit(const char *arch, const char *dir, unsigned long seed, rf_err *err)
{
    const vit_size *s;
    int patch, img;
    if (!parse_arch(arch, &s, &patch, &img))
        return rf_err_set(err, RF_EINVAL,
                          "architecture '%s' is not vit_<tiny|small|base|large>_patch<P>_<IMG>", arch);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return rf_err_set(err, RF_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    const int classes = 1000;
    int64_t E = s->embed, grid = img / patch, T = grid * grid + 1, I = 4 * E;
    size_t total = (size_t)(E + T * E + E * 3 * patch * patch + E + 2 * E + classes * E + classes) +
                   (size_t)s->depth * (size_t)(4 * E + 3 * E * E + 3 * E + E * E + E + I * E + I + E * I + E);
    builder *b = calloc(1, sizeof *b);
    if (!b)
        return rf_err_set(err, RF_ENOMEM, "cannot allocate the checkpoint builder");
    b->data = malloc(total * sizeof(float));
    if (!b->data) {
        free(b);
        return rf_err_set(err, RF_ENOMEM, "cannot allocate %zu weights", total);
    }
    b->r.s = 0x9E3779B97F4A7C15ull ^ (seed * 0xBF58476D1CE4E5B9ull) ^ 1;
    add(b, "cls_token", 3, 1, 1, E, 0, 0.02f, 0);
    add(b, "pos_embed", 3, 1, T, E, 0, 0.02f, 0);
    add(b, "patch_embed.proj.weight", 4, E, 3, patch, patch, 0.02f, 0);
    add(b, "patch_embed.proj.bias", 1, E, 0, 0, 0, 0.0f, 0);
    for (int i = 0; i < s->depth; i++) {
        char p[64];
        snprintf(p, sizeof p, "blocks.%d.norm1", i);
        add_norm(b, p, E);
        snprintf(p, sizeof p, "blocks.%d.attn.qkv", i);
        add_linear(b, p, 3 * E, E);
        snprintf(p, sizeof p, "blocks.%d.attn.proj", i);
        add_linear(b, p, E, E);
        snprintf(p, sizeof p, "blocks.%d.norm2", i);
        add_norm(b, p, E);
        snprintf(p, sizeof p, "blocks.%d.mlp.fc1", i);
        add_linear(b, p, I, E);
        snprintf(p, sizeof p, "blocks.%d.mlp.fc2", i);
        add_linear(b, p, E, I);
    }
    add_norm(b, "norm", E);
    add_linear(b, "head", classes, E);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = rf_safetensors_write(path, b->items, (size_t)b->n, err);
    if (!rc)
        rc = write_config(dir, arch, s, patch, img, classes, err);
    for (int i = 0; i < b->n; i++)
        free((char *)b->items[i].name);
    free(b->data);
    free(b);
    return rc;
}
