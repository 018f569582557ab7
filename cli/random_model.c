/* Random-weight checkpoints of real shapes (timm ViTs, BERT-base), for demos and benchmarks. */
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
    rf_st_out items[1024];
    int64_t shapes[1024][4];
    size_t offsets[1024]; /* into data; pointers are set once data stops moving */
    int n;
    float *data;
    size_t used, cap;
    rng r;
    int failed;
} builder;

/* Appends a tensor of random (std > 0) or constant values. */
static void add(builder *b, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                float std, float fill)
{
    int64_t dims[4] = {d0, d1, d2, d3};
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)dims[i];
    if (b->failed || b->n == 1024) {
        b->failed = 1;
        return;
    }
    if (b->used + count > b->cap) {
        size_t cap = (b->used + count) * 2;
        float *d = realloc(b->data, cap * sizeof *d);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    for (int i = 0; i < ndim; i++)
        b->shapes[b->n][i] = dims[i];
    float *p = b->data + b->used;
    for (size_t i = 0; i < count; i++)
        p[i] = std > 0 ? rng_next(&b->r, std) : fill;
    b->items[b->n] = (rf_st_out){strdup(name), RF_ST_F32, ndim, b->shapes[b->n], NULL};
    b->offsets[b->n] = b->used;
    b->failed |= b->items[b->n].name == NULL;
    b->used += count;
    b->n++;
}

static void add_linear(builder *b, const char *prefix, int64_t out, int64_t in)
{
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add(b, name, 2, out, in, 0, 0, 0.02f, 0);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add(b, name, 1, out, 0, 0, 0, 0.0f, 0);
}

static void add_norm(builder *b, const char *prefix, int64_t n)
{
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add(b, name, 1, n, 0, 0, 0, 0, 1.0f);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add(b, name, 1, n, 0, 0, 0, 0, 0.0f);
}

/* Writes the builder's tensors as DIR/model.safetensors and frees them. */
static int finish(builder *b, const char *dir, rf_err *err)
{
    int rc = b->failed ? rf_err_set(err, RF_ENOMEM, "cannot build the random checkpoint") : RF_OK;
    if (!rc) {
        for (int i = 0; i < b->n; i++)
            b->items[i].data = b->data + b->offsets[i];
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = rf_safetensors_write(path, b->items, (size_t)b->n, err);
    }
    for (int i = 0; i < b->n; i++)
        free((char *)b->items[i].name);
    free(b->data);
    free(b);
    return rc;
}

/* config.json from a cJSON object (consumed). */
static int write_json(const char *dir, cJSON *c, rf_err *err)
{
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

static builder *new_builder(unsigned long seed)
{
    builder *b = calloc(1, sizeof *b);
    if (b)
        b->r.s = 0x9E3779B97F4A7C15ull ^ (seed * 0xBF58476D1CE4E5B9ull) ^ 1;
    return b;
}

static int write_vit_config(const char *dir, const char *arch, const vit_size *s, int patch, int img,
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
    return write_json(dir, c, err);
}

/* A Hugging Face BertModel of bert-base-uncased's shape, in its tensor names. */
static int write_bert(const char *dir, unsigned long seed, rf_err *err)
{
    const int64_t V = 30522, E = 768, L = 12, H = 12, I = 3072, P = 512, TYPES = 2;
    builder *b = new_builder(seed);
    if (!b)
        return rf_err_set(err, RF_ENOMEM, "cannot allocate the checkpoint builder");
    add(b, "embeddings.word_embeddings.weight", 2, V, E, 0, 0, 0.02f, 0);
    add(b, "embeddings.position_embeddings.weight", 2, P, E, 0, 0, 0.02f, 0);
    add(b, "embeddings.token_type_embeddings.weight", 2, TYPES, E, 0, 0, 0.02f, 0);
    add_norm(b, "embeddings.LayerNorm", E);
    for (int i = 0; i < L; i++) {
        char p[96];
        const char *lin[][2] = {{"attention.self.query", "E"}, {"attention.self.key", "E"},
                                {"attention.self.value", "E"}, {"attention.output.dense", "E"}};
        for (int j = 0; j < 4; j++) {
            snprintf(p, sizeof p, "encoder.layer.%d.%s", i, lin[j][0]);
            add_linear(b, p, E, E);
        }
        snprintf(p, sizeof p, "encoder.layer.%d.attention.output.LayerNorm", i);
        add_norm(b, p, E);
        snprintf(p, sizeof p, "encoder.layer.%d.intermediate.dense", i);
        add_linear(b, p, I, E);
        snprintf(p, sizeof p, "encoder.layer.%d.output.dense", i);
        add_linear(b, p, E, I);
        snprintf(p, sizeof p, "encoder.layer.%d.output.LayerNorm", i);
        add_norm(b, p, E);
    }
    add_linear(b, "pooler.dense", E, E);
    int rc = finish(b, dir, err);
    if (rc)
        return rc;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "model_type", "bert");
    cJSON_AddNumberToObject(c, "vocab_size", (double)V);
    cJSON_AddNumberToObject(c, "hidden_size", (double)E);
    cJSON_AddNumberToObject(c, "num_hidden_layers", (double)L);
    cJSON_AddNumberToObject(c, "num_attention_heads", (double)H);
    cJSON_AddNumberToObject(c, "intermediate_size", (double)I);
    cJSON_AddNumberToObject(c, "max_position_embeddings", (double)P);
    cJSON_AddNumberToObject(c, "type_vocab_size", (double)TYPES);
    cJSON_AddStringToObject(c, "hidden_act", "gelu");
    cJSON_AddNumberToObject(c, "layer_norm_eps", 1e-12);
    cJSON_AddStringToObject(c, "note", "random weights of bert-base's shapes; not a trained model");
    return write_json(dir, c, err);
}

int cli_write_random_model(const char *arch, const char *dir, unsigned long seed, rf_err *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return rf_err_set(err, RF_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    if (strcmp(arch, "bert_base") == 0)
        return write_bert(dir, seed, err);
    const vit_size *s;
    int patch, img;
    if (!parse_arch(arch, &s, &patch, &img))
        return rf_err_set(err, RF_EINVAL,
                          "architecture '%s' is neither vit_<tiny|small|base|large>_patch<P>_<IMG> nor bert_base",
                          arch);
    const int classes = 1000;
    int64_t E = s->embed, grid = img / patch, T = grid * grid + 1, I = 4 * E;
    builder *b = new_builder(seed);
    if (!b)
        return rf_err_set(err, RF_ENOMEM, "cannot allocate the checkpoint builder");
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
    int rc = finish(b, dir, err);
    return rc ? rc : write_vit_config(dir, arch, s, patch, img, classes, err);
}
