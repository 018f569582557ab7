/* Small fusion model directories for tests: see model_maker.h. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/model_maker.h"
#include "tests/testutil.h"

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void test_model_remove(const char *dir)
{
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *test_shared_vocab(void)
{
    static char path[4096]; /* set once, the same for every caller */
    if (!path[0])
        snprintf(path, sizeof path, "%s/fixtures/tokenizer/vocab.txt", test_shared_dir());
    return path;
}

void test_model_defaults(rf_fusion_random_opts *o)
{
    rf_fusion_random_defaults(o);
    o->vocab_path = test_shared_vocab();
}

const char *test_make_model(const char *dir, const rf_fusion_random_opts *o)
{
    rf_fusion_random_opts d;
    if (!o) {
        test_model_defaults(&d);
        o = &d;
    }
    rf_err err;
    if (rf_fusion_write_random(dir, o, &err)) {
        fprintf(stderr, "test_make_model: %s\n", err.msg);
        exit(1);
    }
    return dir;
}

const char *test_make_model_tmp(char *buf, size_t n, const rf_fusion_random_opts *o)
{
    test_tmpdir(buf, n);
    return test_make_model(buf, o);
}
