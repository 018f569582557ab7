/*
 * radfuse runtime: tensors, arenas, the compute-backend interface, model files
 * (safetensors + config.json) and the transformer encoders built from them
 * (Hugging Face Dinov2Model, ViTModel, BertModel; timm vit_*).
 *
 * Conventions: every fallible function returns 0 on success or a nonzero
 * RF_E* code and fills the caller's rf_err with one line naming the input and
 * the problem. Nothing here calls exit() or keeps global mutable state.
 */
#ifndef RADFUSE_RUNTIME_H
#define RADFUSE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RADFUSE_VERSION "0.1.0"

/* ---- errors ------------------------------------------------------------ */

enum {
    RF_OK = 0,
    RF_EINVAL = 1,   /* bad argument or malformed input */
    RF_EIO = 2,      /* file could not be read or written */
    RF_ENOMEM = 3,   /* allocation failed or a size limit was exceeded */
    RF_EFORMAT = 4,  /* input file is not in the expected format */
    RF_EUNSUP = 5,   /* well-formed but unsupported (architecture, dtype) */
};

#define RF_ERR_MAX 512
typedef struct rf_err {
    char msg[RF_ERR_MAX];
} rf_err;

/* Formats msg into err (if err is non-NULL) and returns code. */
int rf_err_set(rf_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* msg without a leading "name: " (a file's name or path may hold patient
 * data): for messages that are shown beside something else naming the file. */
const char *rf_err_without_name(const char *msg, const char *name);

/* ---- dtypes and tensors ------------------------------------------------ */

typedef enum rf_dtype {
    RF_F32 = 0,
    RF_F16,
    RF_BF16,
    RF_I32,
    RF_DTYPE_COUNT
} rf_dtype;

size_t rf_dtype_size(rf_dtype t);
const char *rf_dtype_name(rf_dtype t);

/* IEEE half and bfloat16 conversions (round to nearest even). */
float rf_f16_to_f32(uint16_t h);
uint16_t rf_f32_to_f16(float f);
float rf_bf16_to_f32(uint16_t h);
uint16_t rf_f32_to_bf16(float f);

#define RF_MAX_DIMS 4

/*
 * A view of memory: shape and element strides, outermost dimension first.
 * Tensors do not own their storage; arenas and model files do. A tensor is
 * "contiguous" when its strides are the row-major strides of its shape.
 */
typedef struct rf_tensor {
    rf_dtype dtype;
    int ndim;
    int64_t shape[RF_MAX_DIMS];
    int64_t stride[RF_MAX_DIMS];
    void *data;
} rf_tensor;

/* A contiguous tensor over data with the given shape. */
rf_tensor rf_tensor_make(rf_dtype dtype, void *data, int ndim, const int64_t *shape);
int64_t rf_tensor_numel(const rf_tensor *t);
int rf_tensor_is_contiguous(const rf_tensor *t);
/* Rows [begin, end) of dimension dim, without copying. */
rf_tensor rf_tensor_slice(const rf_tensor *t, int dim, int64_t begin, int64_t end);

/* ---- arenas ------------------------------------------------------------ */

/*
 * A bump allocator over one block, sized up front. Allocation never calls
 * malloc; a request that does not fit returns NULL. Reset frees everything.
 */
typedef struct rf_arena {
    uint8_t *base;
    size_t size;
    size_t used;
    size_t peak;
    int owns; /* base was allocated by rf_arena_init */
} rf_arena;

int rf_arena_init(rf_arena *a, size_t size, rf_err *err);
/* An arena over memory the caller owns (e.g. a backend buffer; base may be a
 * device address, which the arena only does arithmetic on). */
void rf_arena_wrap(rf_arena *a, void *base, size_t size);
void rf_arena_free(rf_arena *a);
void *rf_arena_alloc(rf_arena *a, size_t bytes); /* 64-byte aligned */
void rf_arena_reset(rf_arena *a);
/* A new contiguous tensor in the arena, or NULL data when it does not fit. */
rf_tensor rf_arena_tensor(rf_arena *a, rf_dtype dtype, int ndim, const int64_t *shape);

/* Growable arrays: makes *arr (elem bytes per entry, *cap entries) hold at
 * least need entries, doubling its capacity, the new entries zeroed. 0, or
 * -1 when out of memory (then *arr and *cap are unchanged). */
int rf_array_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* ---- safetensors ------------------------------------------------------- */

/* Every dtype the safetensors format defines; models accept a subset. */
typedef enum rf_st_dtype {
    RF_ST_BOOL, RF_ST_U8, RF_ST_I8, RF_ST_I16, RF_ST_U16, RF_ST_F16, RF_ST_BF16,
    RF_ST_I32, RF_ST_U32, RF_ST_F32, RF_ST_I64, RF_ST_U64, RF_ST_F64,
    RF_ST_F8_E4M3, RF_ST_F8_E5M2,
    RF_ST_DTYPE_COUNT
} rf_st_dtype;

typedef struct rf_st_tensor {
    char *name;
    rf_st_dtype dtype;
    int ndim;
    int64_t shape[8];
    size_t nbytes;
    const void *data; /* points into the mapped file; may be unaligned */
} rf_st_tensor;

typedef struct rf_safetensors rf_safetensors;

/*
 * Maps and validates a safetensors file: header JSON well formed and within
 * limits, every dtype known, every byte range inside the data section with no
 * overlaps, byte size = product(shape) * element size without overflow.
 */
int rf_safetensors_open(rf_safetensors **out, const char *path, rf_err *err);
void rf_safetensors_close(rf_safetensors *st);
size_t rf_safetensors_count(const rf_safetensors *st);
const rf_st_tensor *rf_safetensors_at(const rf_safetensors *st, size_t i);
const rf_st_tensor *rf_safetensors_find(const rf_safetensors *st, const char *name);
const char *rf_safetensors_path(const rf_safetensors *st);
/* The "__metadata__" value for key, or NULL. */
const char *rf_safetensors_metadata(const rf_safetensors *st, const char *key);
const char *rf_st_dtype_name(rf_st_dtype t);
size_t rf_st_dtype_size(rf_st_dtype t);

/* A tensor to write with rf_safetensors_write. */
typedef struct rf_st_out {
    const char *name;
    rf_st_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} rf_st_out;

/* Writes tensors to path atomically (temp file, fsync, rename). */
int rf_safetensors_write(const char *path, const rf_st_out *tensors, size_t n, rf_err *err);

/* ---- backends ---------------------------------------------------------- */

typedef struct rf_backend rf_backend;

/*
 * Creates a backend by device name: "cpu"; "vulkan" (the best Vulkan device:
 * discrete GPU > integrated > others > a CPU driver such as lavapipe);
 * "vulkan:N" (device N); "auto" or NULL (a Vulkan GPU if there is one, else
 * the CPU). Where Vulkan is asked for but no loader or device works, the CPU
 * backend is returned and rf_backend_warning says why. threads: CPU threads,
 * 0 = one per core.
 */
int rf_backend_create(rf_backend **out, const char *name, int threads, rf_err *err);
void rf_backend_destroy(rf_backend *be);
/* "cpu", or "vulkan (device name)". */
const char *rf_backend_name(const rf_backend *be);
/* One line on why the backend is not the device asked for, or NULL. */
const char *rf_backend_warning(const rf_backend *be);

/* Arithmetic precision of a backend's linear layers (and patch embedding). */
typedef enum rf_precision {
    RF_PRECISION_FP32 = 0, /* weights and products in fp32 (every backend) */
    RF_PRECISION_FP16,     /* weights stored in IEEE half, products accumulated in fp32 */
} rf_precision;

/*
 * Weights of linear layers stored in fp16 (rounded to nearest even), products
 * accumulated in fp32; bias, activations and every other operation stay fp32.
 * Call before rf_model_load: it applies to the models loaded afterwards.
 * RF_EUNSUP (one line) where the backend or its device cannot: the CPU
 * backend runs fp32 only; a Vulkan device needs shaderFloat16 and 16-bit
 * storage buffer access.
 */
int rf_backend_set_precision(rf_backend *be, rf_precision p, rf_err *err);

/* ---- encoder models ---------------------------------------------------- */

typedef enum rf_arch {
    RF_ARCH_DINOV2,   /* transformers Dinov2Model (microsoft/rad-dino) */
    RF_ARCH_HF_VIT,   /* transformers ViTModel */
    RF_ARCH_BERT,     /* transformers BertModel (BiomedBERT, CXR-BERT) */
    RF_ARCH_TIMM_VIT, /* timm vit_* (VisionTransformer) */
} rf_arch;

const char *rf_arch_name(rf_arch a);

typedef struct rf_model rf_model;

/* Summary of a loaded model, for `radfuse model info`. */
typedef struct rf_model_info {
    rf_arch arch;
    int hidden, layers, heads, intermediate;
    int image_size, patch_size, channels; /* vision models */
    int vocab_size, max_positions;        /* text models */
    int num_classes;                      /* timm head, 0 if none */
    int64_t param_count;                  /* elements of every tensor the model uses */
    int64_t tensor_count;
    int64_t dtype_counts[RF_ST_DTYPE_COUNT]; /* tensors per stored dtype */
} rf_model_info;

/*
 * Loads DIR/config.json and DIR/model.safetensors (or the shards listed in
 * DIR/model.safetensors.index.json), picks the builder from the config and
 * binds every tensor by its checkpoint name. Weights are converted to f32.
 */
int rf_model_load(rf_model **out, const char *dir, rf_backend *be, rf_err *err);
void rf_model_free(rf_model *m);
const rf_model_info *rf_model_get_info(const rf_model *m);
/* Path of the i-th weight file the model was loaded from, or NULL past the end. */
const char *rf_model_weight_file(const rf_model *m, int i);

/* Inputs by the reference fixtures' names. Unused fields are NULL. */
typedef struct rf_model_inputs {
    const rf_tensor *pixel_values;   /* f32 [B, C, H, W] */
    const rf_tensor *input_ids;      /* i32 [B, T] */
    const rf_tensor *attention_mask; /* i32 [B, T], optional */
    const rf_tensor *token_type_ids; /* i32 [B, T], optional */
    /* Optional (0: none): return the hidden state entering each of the last
     * capture_blocks blocks (all of them when >= layers) in
     * rf_model_outputs.block_inputs, for saliency (Grad-CAM starts from the
     * last block's input, attention rollout recomputes every block's
     * attention from its input). */
    int capture_blocks;
} rf_model_inputs;

/*
 * Outputs, allocated by rf_model_forward with malloc (caller frees each
 * .data): last_hidden_state [B, N, H]; pooler_output [B, H] (Dinov2, ViT with
 * pooler, BERT with pooler); logits [B, classes] (timm with a head).
 * Absent outputs have data == NULL.
 */
typedef struct rf_model_outputs {
    rf_tensor last_hidden_state;
    rf_tensor pooler_output;
    rf_tensor logits;
    /* f32 [n, B, T, H] when rf_model_inputs.capture_blocks asked for n
     * blocks: [i] is the input of block layers - n + i. */
    rf_tensor block_inputs;
} rf_model_outputs;

int rf_model_forward(rf_model *m, const rf_model_inputs *in, rf_model_outputs *out, rf_err *err);
void rf_model_outputs_free(rf_model_outputs *out);

#ifdef __cplusplus
}
#endif
#endif
