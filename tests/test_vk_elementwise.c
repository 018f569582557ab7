/*
 * LayerNorm and the elementwise operations of the Vulkan backend against the
 * CPU backend (itself checked against double-precision references in
 * test_ops), on random inputs with odd sizes, strides, broadcasting and
 * aliasing. Tolerance: 1e-5 * (1 + |cpu|): both sides evaluate the same fp32
 * formulas; the GPU's reductions and transcendental rounding differ by a few
 * ulp. Vulkan must come up (lavapipe in CI): a missing device fails the test.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/vk_device.h"
#include "tests/testutil.h"

static rf_backend *cpu, *vk;

static double compare(const float *a, const float *b, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)a[i]));
        if (!(e <= worst))
            worst = e != e ? INFINITY : e;
    }
    return worst;
}

/* Runs op on both backends over x [rows, cols] (row stride xs) and y (row stride ys). */
enum op { OP_ACT, OP_ADD, OP_ADD_BROADCAST, OP_SCALE_ADD, OP_LAYERNORM };

static void run_case(enum op op, rf_act act, int64_t rows, int64_t cols, int64_t pad, int alias)
{
    int64_t xs = cols + pad, n = rows * xs;
    float *x = test_falloc(n), *b = test_falloc(n), *g = test_falloc(cols), *beta = test_falloc(cols),
          *y0 = test_falloc(n), *out_cpu = test_falloc(n), *out_vk = test_falloc(n);
    test_fill_random(x, n, (uint64_t)(rows * 7 + cols + op), 4.0f);
    test_fill_random(b, n, (uint64_t)(rows * 11 + cols), 2.0f);
    test_fill_random(g, cols, 5, 1.5f);
    test_fill_random(beta, cols, 6, 0.5f);
    test_fill_random(y0, n, 9, 1.0f);
    if (op == OP_LAYERNORM)
        for (int64_t i = 0; i < n; i++)
            x[i] += 100.0f; /* a large mean: the two-pass variance must hold */
    int64_t shape[2] = {rows, xs}, vshape[1] = {cols};
    rf_backend *bes[2] = {cpu, vk};
    float *outs[2] = {out_cpu, out_vk};
    for (int k = 0; k < 2; k++) {
        rf_backend *be = bes[k];
        test_dev dx, db, dg, dbeta, dy;
        test_dev_alloc(be, &dx, RF_F32, 2, shape, x);
        test_dev_alloc(be, &db, RF_F32, 2, shape, b);
        test_dev_alloc(be, &dg, RF_F32, 1, vshape, g);
        test_dev_alloc(be, &dbeta, RF_F32, 1, vshape, beta);
        test_dev_alloc(be, &dy, RF_F32, 2, shape, y0);
        rf_tensor tx = dx.t, tb = db.t, ty = alias ? dx.t : dy.t;
        tx.shape[1] = tb.shape[1] = ty.shape[1] = cols; /* views narrower than their rows */
        if (op == OP_ADD_BROADCAST)
            tb.shape[0] = 1;
        rf_err err = {{0}};
        int rc = be->ops->begin(be, &err);
        if (!rc) {
            switch (op) {
            case OP_ACT: rc = be->ops->activation(be, &ty, &tx, act, &err); break;
            case OP_ADD:
            case OP_ADD_BROADCAST: rc = be->ops->add(be, &ty, &tx, &tb, &err); break;
            case OP_SCALE_ADD: rc = be->ops->scale_add(be, &ty, &tx, &dg.t, &tb, &err); break;
            case OP_LAYERNORM: rc = be->ops->layernorm(be, &ty, &tx, &dg.t, &dbeta.t, 1e-6f, &err); break;
            }
            rc = test_end_pass(be, rc, &err);
        }
        CHECKF(rc == 0, "%s op %d: %s", rf_backend_name(be), op, err.msg);
        test_dev_read(be, alias ? &dx.t : &dy.t, outs[k]);
        test_dev_free(be, &dx);
        test_dev_free(be, &db);
        test_dev_free(be, &dg);
        test_dev_free(be, &dbeta);
        test_dev_free(be, &dy);
    }
    double e = compare(out_cpu, out_vk, n); /* padding columns included: both must leave them alone */
    CHECKF(e <= 1e-5, "op %d act %d rows %lld cols %lld pad %lld alias %d: error %g", op, act, (long long)rows,
           (long long)cols, (long long)pad, alias, e);
    free(x), free(b), free(g), free(beta), free(y0), free(out_cpu), free(out_vk);
}

int main(void)
{
    rf_err err;
    test_backends_create(&cpu, &vk);
    const int64_t rows[] = {1, 3, 17, 197}, cols[] = {1, 24, 40, 100, 768};
    const rf_act acts[] = {RF_ACT_NONE, RF_ACT_GELU_ERF, RF_ACT_GELU_TANH, RF_ACT_TANH, RF_ACT_RELU};
    for (size_t r = 0; r < 4; r++)
        for (size_t c = 0; c < 5; c++)
            for (int pad = 0; pad <= 3; pad += 3) {
                for (size_t a = 0; a < 5; a++)
                    run_case(OP_ACT, acts[a], rows[r], cols[c], pad, pad == 0);
                run_case(OP_ADD, RF_ACT_NONE, rows[r], cols[c], pad, 0);
                run_case(OP_ADD, RF_ACT_NONE, rows[r], cols[c], pad, 1);
                run_case(OP_ADD_BROADCAST, RF_ACT_NONE, rows[r], cols[c], pad, 0);
                run_case(OP_SCALE_ADD, RF_ACT_NONE, rows[r], cols[c], pad, 0);
                run_case(OP_LAYERNORM, RF_ACT_NONE, rows[r], cols[c], pad, 0);
                run_case(OP_LAYERNORM, RF_ACT_NONE, rows[r], cols[c], pad, 1);
            }
    /* shape errors are refused before anything is recorded */
    test_dev d;
    int64_t shape[2] = {4, 8}, gshape[1] = {7};
    test_dev_alloc(vk, &d, RF_F32, 2, shape, NULL);
    test_dev g;
    test_dev_alloc(vk, &g, RF_F32, 1, gshape, NULL);
    CHECK(vk->ops->begin(vk, &err) == 0);
    rf_tensor wrong = d.t;
    wrong.shape[1] = 7;
    CHECK(vk->ops->add(vk, &d.t, &d.t, &wrong, &err) == RF_EINVAL && strchr(err.msg, '\n') == NULL);
    CHECK(vk->ops->layernorm(vk, &d.t, &d.t, &g.t, &g.t, 1e-6f, &err) == RF_EINVAL);
    CHECK(vk->ops->end(vk, 0, &err) == 0);
    test_dev_free(vk, &d);
    test_dev_free(vk, &g);
    rf_backend_destroy(vk);
    rf_backend_destroy(cpu);
    return test_finish("test_vk_elementwise");
}
