/*
 * Small fusion model directories for tests (docs/model-dir.md): a tiny ViT
 * (Hugging Face ViTModel or timm names), a tiny BERT over the shared
 * tokenizer vocabulary (shared/fixtures/tokenizer/vocab.txt, 3759 tokens), a
 * fusion transformer and 1-16 labels, with deterministic random weights,
 * laid out with encoder subdirectories or inline sections. The same options
 * but the layout give the same weights, hence the same outputs.
 */
#ifndef RADFUSE_TESTS_MODEL_MAKER_H
#define RADFUSE_TESTS_MODEL_MAKER_H

#include "fusion/fusion_model.h"

/* The defaults of rf_fusion_random_defaults with the shared vocabulary. */
void test_model_defaults(rf_fusion_random_opts *o);

/* Writes the model directory (created when missing); exits the test with a
 * message on failure. Returns dir. */
const char *test_make_model(const char *dir, const rf_fusion_random_opts *o);

/* A fresh temporary directory holding a model made with o (NULL: defaults);
 * path into buf. */
const char *test_make_model_tmp(char *buf, size_t n, const rf_fusion_random_opts *o);

/* Removes a model directory made by the functions above (rm -r). */
void test_model_remove(const char *dir);

/* The shared WordPiece vocabulary (exits when the shared data is missing). */
const char *test_shared_vocab(void);

#endif
