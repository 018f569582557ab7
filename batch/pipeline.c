/*
 * rf_batch_run: the export through a pipeline.
 *
 *   workers (jobs threads)  bt_prepare: decode, render, preprocess, notes, labs
 *                           and, between those, the folders of inferred studies
 *                           (overlays, report.html, FHIR, result.json)
 *   device (one thread)     bt_infer: text encoder, vision, fusion, saliency, for
 *                           every prepared study waiting (up to device_batch):
 *                           their images through the vision encoder in one pass
 *   committer (the caller)  results.jsonl and the state, several studies per
 *                           fsync and transaction
 *
 * The stages hand studies on through FIFOs under one lock. At most `limit`
 * studies (jobs + queue) are taken and not yet committed, so memory stays
 * flat whatever the export's size, and no FIFO can overflow (each holds at
 * most limit). A study that fails goes straight to the committer and is
 * recorded as failed; an output or the state that cannot be written stops
 * every stage and the run returns RF_EIO, with the state as it was after the
 * last commit.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch/batch_internal.h"
#include "runtime/fileio.h"
#include "runtime/threadpool.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct bt_item {
    size_t study;
    int failed;        /* the study failed: recorded with stage and reason */
    int fatal;         /* its outputs could not be written: the batch stops */
    int dropped;       /* stopping: not recorded */
    const char *stage; /* "read" (decode to labs), "inference" */
    char reason[RF_ERR_MAX + 64];
    bt_prepared p;
    char *line;        /* its results.jsonl line */
    size_t len;
} bt_item;

/* A FIFO of at most cap items (cap = the in-flight limit: never full). */
typedef struct bt_fifo {
    bt_item **v;
    size_t cap, head, n;
} bt_fifo;

static void f_push(bt_fifo *q, bt_item *it)
{
    q->v[(q->head + q->n++) % q->cap] = it;
}

static bt_item *f_pop(bt_fifo *q)
{
    bt_item *it = q->v[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    return it;
}

typedef struct bt_run {
    rf_fusion *model;
    const rf_batch_opts *o;
    const char *out;
    bt_export ex;
    bt_read_opts ro;
    size_t *todo; /* study indices */
    size_t ntodo;

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    bt_fifo prepared, inferred, commit;
    size_t next, inflight, limit;
    int preparing, workers_alive, device_ended, stop;
    size_t device_batch;            /* studies per device batch at most */
    size_t device_batches, device_studies;
    double prepare_ms, write_ms, device_ms, device_wait_ms;
} bt_run;

static void item_free(bt_item *it)
{
    if (!it)
        return;
    bt_prepared_free(&it->p);
    free(it->line);
    free(it);
}

static int write_study(bt_run *R, const bt_study *st, rf_read_result *r, char **line, size_t *linelen, rf_err *err);

/* A failed read's message with why its first images were skipped: the
 * result, which holds the reasons, is not kept for a failed study. */
static void failure_reason(const rf_read_result *r, const char *msg, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s", msg);
    static const char see[] = "; see the reasons in the result";
    char *p = strstr(out, see);
    if (p) {
        memmove(p, p + sizeof see - 1, strlen(p + sizeof see - 1) + 1);
        n = strlen(out);
    }
    for (size_t i = 0, shown = 0; i < r->nimages && shown < 2 && n < cap; i++) {
        const rf_result_image *im = &r->images[i];
        if (im->used || !im->reason || im->prior)
            continue;
        n += (size_t)snprintf(out + n, cap - n, "%s%s: %s", shown ? "; " : ": ", im->path ? im->path : "?",
                              im->reason);
        shown++;
    }
}

/* The write stage of items (one at a time; dropped: nothing written). */
static void write_step(bt_run *R, bt_item **items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bt_item *it = items[i];
        rf_err e;
        if (!it->dropped && write_study(R, &R->ex.studies[it->study], &it->p.r, &it->line, &it->len, &e)) {
            it->fatal = 1;
            snprintf(it->reason, sizeof it->reason, "study %s: %s", R->ex.studies[it->study].key, e.msg);
        }
        rf_result_free(&it->p.r);
    }
}

/* The device stage of a batch of items (dropped ones not inferred): one
 * bt_infer over the rest. */
static void infer_step(bt_run *R, bt_item **items, size_t n)
{
    bt_prepared *ps[RF_BATCH_MAX_DEVICE_BATCH];
    int rcs[RF_BATCH_MAX_DEVICE_BATCH];
    rf_err errs[RF_BATCH_MAX_DEVICE_BATCH];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!items[i]->dropped)
            ps[k++] = &items[i]->p;
    if (k)
        bt_infer(R->model, ps, k, rcs, errs);
    for (size_t i = 0, j = 0; i < n; i++) {
        bt_item *it = items[i];
        if (!it->dropped && rcs[j]) {
            it->failed = 1;
            it->stage = "inference";
            snprintf(it->reason, sizeof it->reason, "%s", errs[j].msg);
        }
        j += !it->dropped;
        bt_prepared_release(&it->p);
    }
}

/*
 * Moves the first items of from (at most max, all that wait) through step
 * outside the lock (once the run stops they are dropped instead), adds the
 * time to *ms and queues each item on to, or for commit when it failed or
 * was dropped; returns how many it took. Called and returns with R->mu held.
 */
static size_t run_stage(bt_run *R, bt_fifo *from, bt_fifo *to, size_t max, double *ms,
                        void (*step)(bt_run *, bt_item **, size_t))
{
    bt_item *items[RF_BATCH_MAX_DEVICE_BATCH];
    size_t n = 0;
    while (from->n && n < max && n < RF_BATCH_MAX_DEVICE_BATCH) {
        items[n] = f_pop(from);
        if (R->stop)
            items[n]->dropped = 1;
        n++;
    }
    pthread_mutex_unlock(&R->mu);
    double t0 = now_ms();
    step(R, items, n);
    double t1 = now_ms();
    pthread_mutex_lock(&R->mu);
    *ms += t1 - t0;
    for (size_t i = 0; i < n; i++)
        f_push(items[i]->failed || items[i]->dropped ? &R->commit : to, items[i]);
    pthread_cond_broadcast(&R->cv);
    return n;
}

static void *worker(void *arg)
{
    bt_run *R = arg;
    pthread_mutex_lock(&R->mu);
    for (;;) {
        if (R->inferred.n) {
            /* finish what is furthest along first: it holds memory */
            run_stage(R, &R->inferred, &R->commit, 1, &R->write_ms, write_step);
            continue;
        }
        if (!R->stop && R->next < R->ntodo && R->inflight < R->limit) {
            size_t k = R->next++;
            R->inflight++;
            R->preparing++;
            pthread_mutex_unlock(&R->mu);
            double t0 = now_ms();
            bt_item *it = calloc(1, sizeof *it);
            rf_err e;
            if (it) {
                it->study = R->todo[k];
                if (bt_prepare(R->model, &R->ex, it->study, &R->ro, &it->p, &e)) {
                    if (it->p.fatal) {
                        it->fatal = 1;
                        snprintf(it->reason, sizeof it->reason, "study %s: %s", R->ex.studies[it->study].key, e.msg);
                    } else {
                        it->failed = 1;
                        it->stage = "read";
                        failure_reason(&it->p.r, e.msg, it->reason, sizeof it->reason);
                    }
                    bt_prepared_free(&it->p);
                }
            }
            double t1 = now_ms();
            pthread_mutex_lock(&R->mu);
            R->prepare_ms += t1 - t0;
            R->preparing--;
            if (!it) {
                R->stop = 1;
                R->inflight--;
            } else {
                f_push(it->failed || it->fatal ? &R->commit : &R->prepared, it);
            }
            pthread_cond_broadcast(&R->cv);
            continue;
        }
        if (R->device_ended && R->inferred.n == 0)
            break;
        pthread_cond_wait(&R->cv, &R->mu);
    }
    R->workers_alive--;
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
    return NULL;
}

static void *device(void *arg)
{
    bt_run *R = arg;
    pthread_mutex_lock(&R->mu);
    for (;;) {
        if (R->prepared.n) {
            R->device_studies += run_stage(R, &R->prepared, &R->inferred, R->device_batch, &R->device_ms, infer_step);
            R->device_batches++;
            continue;
        }
        if ((R->stop || R->next >= R->ntodo) && R->preparing == 0)
            break;
        double t0 = now_ms();
        pthread_cond_wait(&R->cv, &R->mu);
        R->device_wait_ms += now_ms() - t0;
    }
    R->device_ended = 1;
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
    return NULL;
}

/* The study's outputs into studies/<key>.tmp, renamed to studies/<key>: its
 * folder is whole or absent. result.json last, so that it names the rest. */
static int write_study(bt_run *R, const bt_study *st, rf_read_result *r, char **line, size_t *linelen, rf_err *err)
{
    char studies[4096], tmp[4200], dir[4200], path[4300];
    snprintf(studies, sizeof studies, "%s/studies", R->out);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", studies, st->key);
    snprintf(dir, sizeof dir, "%s/%s", studies, st->key);
    if (bt_remove_tree(tmp))
        return rf_err_set(err, RF_EIO, "%s: cannot remove: %s", tmp, strerror(errno));
    if (mkdir(tmp, 0777) != 0)
        return rf_err_set(err, RF_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = RF_OK, maps = 0;
    for (size_t k = 0; k < r->nfindings; k++)
        maps += r->findings[k].nmaps > 0;
    rf_overlay_opts ov = {.colormap = "viridis", .alpha = 0.5f, .floor = 0.2f};
    unsigned outs = R->o->outputs ? R->o->outputs : RF_BATCH_OUT_DEFAULT;
    if (maps && (outs & RF_BATCH_OUT_OVERLAYS))
        rc = rf_result_write_overlays(r, tmp, &ov, err);
    if (!rc && (outs & RF_BATCH_OUT_DICOM))
        rc = rf_result_write_dicom(r, tmp, err);
    if (!rc && (outs & RF_BATCH_OUT_HTML))
        rc = rf_result_write_html(r, tmp, err);
    if (!rc && (outs & RF_BATCH_OUT_FHIR)) {
        snprintf(path, sizeof path, "%s/report.fhir.json", tmp);
        rc = rf_result_write_fhir(r, path, err);
    }
    char *text = NULL;
    size_t len = 0;
    if (!rc)
        rc = rf_result_json(r, &text, &len, err);
    if (!rc) {
        snprintf(path, sizeof path, "%s/result.json", tmp);
        rc = rf_write_file_atomic(path, text, len, err);
    }
    if (!rc && bt_sync_dir(tmp, err))
        rc = RF_EIO;
    if (!rc && bt_remove_tree(dir))
        rc = rf_err_set(err, RF_EIO, "%s: cannot remove: %s", dir, strerror(errno));
    if (!rc && rename(tmp, dir) != 0)
        rc = rf_err_set(err, RF_EIO, "%s: cannot rename into place: %s", dir, strerror(errno));
    if (!rc)
        rc = bt_sync_dir(studies, err);
    /* the same document on one line */
    if (!rc) {
        cJSON *j = cJSON_ParseWithLength(text, len);
        char *one = j ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        if (!one) {
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        } else {
            size_t n = strlen(one);
            char *l = realloc(one, n + 2);
            if (!l) {
                free(one);
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            } else {
                l[n] = '\n';
                l[n + 1] = 0;
                *line = l;
                *linelen = n + 1;
            }
        }
    }
    free(text);
    if (rc)
        bt_remove_tree(tmp);
    return rc;
}

/* The folder of a study whose line was not recorded (the batch stopped): the
 * next run writes it again, and until then no folder is without its line. */
static void drop_folder(bt_run *R, const bt_study *s)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/studies/%s", R->out, s->key);
    bt_remove_tree(dir);
}

static int check_shard_meta(bt_state *st, const rf_batch_opts *o, rf_err *err)
{
    char want[64], have[64];
    snprintf(want, sizeof want, "%d/%d", o->nshards > 1 ? o->shard : 0, o->nshards > 1 ? o->nshards : 1);
    if (bt_state_get_meta(st, "shard", have, sizeof have) == 0 && strcmp(have, want) != 0)
        return rf_err_set(err, RF_EINVAL, "%s: holds shard %s, not %s: use another output directory", o->out, have,
                          want);
    return bt_state_set_meta(st, "shard", want, err);
}

int rf_batch_run(rf_fusion *model, const rf_batch_opts *o, rf_batch_summary *sum, rf_err *err)
{
    memset(sum, 0, sizeof *sum);
    if (!o->root || !o->out)
        return rf_err_set(err, RF_EINVAL, "batch: a root and an output directory are needed");
    int nshards = o->nshards > 1 ? o->nshards : 1, shard = nshards > 1 ? o->shard : 0;
    if (shard < 0 || shard >= nshards)
        return rf_err_set(err, RF_EINVAL, "batch: shard %d of %d is out of range", shard, nshards);
    bt_run *R = calloc(1, sizeof *R);
    if (!R)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    R->model = model;
    R->o = o;
    R->out = o->out;
    R->ro = (bt_read_opts){o->out, o->saliency, o->precision, o->include_phi};
    R->device_batch = o->device_batch > 0 ? (size_t)o->device_batch : RF_BATCH_DEVICE_BATCH;
    if (R->device_batch > RF_BATCH_MAX_DEVICE_BATCH)
        R->device_batch = RF_BATCH_MAX_DEVICE_BATCH;
    pthread_mutex_init(&R->mu, NULL);
    pthread_cond_init(&R->cv, NULL);
    int jobs = o->jobs > 0 ? o->jobs : rf_cpu_count();
    if (jobs < 1)
        jobs = 1;
    sum->stages.jobs = jobs;

    double t0 = now_ms();
    int rc = bt_discover(o->root, o->manifest, shard, nshards, jobs, &R->ex, err);
    sum->stages.discover_ms = now_ms() - t0;
    bt_state *st = NULL;
    if (!rc)
        rc = bt_state_open(&st, o->out, rf_fusion_get_info(model)->sha256, err);
    if (!rc)
        rc = check_shard_meta(st, o, err);
    if (!rc)
        rc = bt_state_set_file_errors(st, &R->ex, err);
    rf_batch_progress *pg = &sum->progress;
    sum->studies_found = R->ex.n;
    if (!rc && !(R->todo = calloc(R->ex.n ? R->ex.n : 1, sizeof *R->todo)))
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < R->ex.n; i++) {
        if (!R->ex.studies[i].shard_hit)
            continue;
        pg->total++;
        bt_status s = bt_state_status(st, R->ex.studies[i].key);
        if (s == BT_DONE) {
            pg->done++;
            pg->done_before++;
        } else if (s == BT_FAILED && !o->retry_failed) {
            pg->failed++;
        } else {
            R->todo[R->ntodo++] = i;
        }
    }
    for (size_t i = 0; i < R->ex.nerrors; i++)
        pg->file_errors += R->ex.errors[i].shard_hit;
    for (size_t i = 0; i < R->ex.nignored; i++)
        sum->ignored_files += R->ex.ignored[i].shard_hit;
    if (!rc) {
        char v[32];
        snprintf(v, sizeof v, "%zu", pg->total);
        rc = bt_state_set_meta(st, "total", v, err);
    }

    /* the pipeline */
    /* by default room for a full device batch in hand and one waiting */
    size_t wide = (size_t)jobs > R->device_batch ? (size_t)jobs : R->device_batch;
    R->limit = (size_t)jobs + (o->queue > 0 ? (size_t)o->queue : 2 * wide);
    bt_fifo *qs[3] = {&R->prepared, &R->inferred, &R->commit};
    for (int i = 0; !rc && i < 3; i++) {
        qs[i]->cap = R->limit;
        if (!(qs[i]->v = calloc(R->limit, sizeof *qs[i]->v)))
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    bt_item **batch = rc ? NULL : calloc(R->limit, sizeof *batch);
    bt_record *recs = rc ? NULL : calloc(R->limit, sizeof *recs);
    pthread_t *th = rc ? NULL : calloc((size_t)jobs, sizeof *th), dev;
    if (!rc && (!batch || !recs || !th))
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    int started = 0, dev_started = 0;
    double start = now_ms(), commit_ms = 0, last_report = -1e9;
    if (!rc) {
        pthread_mutex_lock(&R->mu);
        for (; started < jobs; started++) {
            if (pthread_create(&th[started], NULL, worker, R) != 0)
                break;
            R->workers_alive++;
        }
        dev_started = started > 0 && pthread_create(&dev, NULL, device, R) == 0;
        if (!dev_started) {
            R->stop = 1;
            R->device_ended = 1;
            pthread_cond_broadcast(&R->cv);
            rc = rf_err_set(err, RF_ENOMEM, "batch: cannot start threads");
        }
        pthread_mutex_unlock(&R->mu);
    }
    /* the committer */
    if (started) {
        pthread_mutex_lock(&R->mu);
        for (;;) {
            if (R->commit.n == 0) {
                if (R->workers_alive == 0 && R->device_ended)
                    break;
                pthread_cond_wait(&R->cv, &R->mu);
                continue;
            }
            size_t n = 0;
            while (R->commit.n)
                batch[n++] = f_pop(&R->commit);
            pthread_mutex_unlock(&R->mu);
            double c0 = now_ms();
            size_t nr = 0;
            for (size_t i = 0; i < n; i++) {
                bt_item *it = batch[i];
                const bt_study *s = &R->ex.studies[it->study];
                if (it->fatal && !rc) {
                    rc = rf_err_set(err, RF_EIO, "%s", it->reason);
                    sum->stopped = 1;
                }
                if (it->fatal || it->dropped || rc) {
                    if (it->line)
                        drop_folder(R, s);
                    continue;
                }
                recs[nr++] = (bt_record){s->key, s->uid, it->failed ? NULL : it->line, it->len, it->stage, it->reason};
            }
            if (nr && !rc) {
                int kept = 0;
                rc = bt_state_record(st, recs, nr, &kept, err);
                if (rc) {
                    sum->stopped = 1;
                    /* lines that were cut again: their folders go too */
                    for (size_t i = 0; !kept && i < n; i++)
                        if (batch[i]->line)
                            drop_folder(R, &R->ex.studies[batch[i]->study]);
                } else {
                    for (size_t i = 0; i < nr; i++) {
                        if (recs[i].line)
                            pg->done++;
                        else
                            pg->failed++;
                    }
                    pg->run_done += nr;
                }
            }
            for (size_t i = 0; i < n; i++)
                item_free(batch[i]);
            double t = now_ms();
            commit_ms += t - c0;
            pg->elapsed_s = (t - start) / 1e3;
            if (o->progress && !rc && t - last_report >= 200) {
                last_report = t;
                o->progress(o->progress_ctx, pg);
            }
            pthread_mutex_lock(&R->mu);
            R->inflight -= n;
            if (rc)
                R->stop = 1;
            pthread_cond_broadcast(&R->cv);
        }
        pthread_mutex_unlock(&R->mu);
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (dev_started)
        pthread_join(dev, NULL);
    free(th);
    free(batch);
    free(recs);
    sum->stages.wall_ms = now_ms() - start;
    sum->stages.prepare_ms = R->prepare_ms;
    sum->stages.device_ms = R->device_ms;
    sum->stages.device_wait_ms = R->device_wait_ms;
    sum->stages.device_batches = R->device_batches;
    sum->stages.device_studies = R->device_studies;
    sum->stages.write_ms = R->write_ms;
    sum->stages.commit_ms = commit_ms;
    pg->elapsed_s = sum->stages.wall_ms / 1e3;
    if (st) {
        rf_err e2;
        int wrc = bt_state_write_errors(st, &e2);
        if (wrc && !rc) {
            rc = rf_err_set(err, wrc, "%s", e2.msg);
            sum->stopped = 1;
        }
    }
    pg->final = 1;
    if (o->progress && st)
        o->progress(o->progress_ctx, pg);
    for (int i = 0; i < 3; i++) {
        while (qs[i]->v && qs[i]->n)
            item_free(f_pop(qs[i]));
        free(qs[i]->v);
    }
    bt_state_close(st);
    bt_export_free(&R->ex);
    free(R->todo);
    pthread_mutex_destroy(&R->mu);
    pthread_cond_destroy(&R->cv);
    free(R);
    return rc;
}

int rf_batch_plan(const rf_batch_opts *o, void (*fn)(void *ctx, const rf_batch_plan_study *s),
                  void (*ignored)(void *ctx, const char *path, const char *reason), void *ctx, size_t *nfile_errors,
                  size_t *nignored, rf_err *err)
{
    int nshards = o->nshards > 1 ? o->nshards : 1, shard = nshards > 1 ? o->shard : 0;
    if (shard < 0 || shard >= nshards)
        return rf_err_set(err, RF_EINVAL, "batch: shard %d of %d is out of range", shard, nshards);
    bt_export ex;
    int rc = bt_discover(o->root, o->manifest, shard, nshards, o->jobs > 0 ? o->jobs : rf_cpu_count(), &ex, err);
    if (rc)
        return rc;
    bt_state *st = NULL;
    rf_err ignore;
    if (o->out)
        bt_state_open_readonly(&st, o->out, &ignore);
    static const char *const pairing[] = {"none", "manifest", "folder"};
    for (size_t i = 0; i < ex.n; i++) {
        const bt_study *s = &ex.studies[i];
        if (!s->shard_hit)
            continue;
        bt_status status = st ? bt_state_status(st, s->key) : BT_PENDING;
        rf_batch_plan_study p = {
            .uid = s->uid,
            .key = s->key,
            .instances = s->instances,
            .nnotes = s->nnotes,
            .nlabs = s->nlabs,
            .has_prior = s->prior >= 0,
            .pairing = pairing[s->pairing],
            .state = status == BT_DONE ? "done" : status == BT_FAILED ? "failed" : "pending",
        };
        fn(ctx, &p);
    }
    size_t ne = 0, ni = 0;
    for (size_t i = 0; i < ex.nerrors; i++)
        ne += ex.errors[i].shard_hit;
    for (size_t i = 0; i < ex.nignored; i++) {
        if (!ex.ignored[i].shard_hit)
            continue;
        ni++;
        if (ignored)
            ignored(ctx, ex.ignored[i].name, ex.ignored[i].reason);
    }
    if (nfile_errors)
        *nfile_errors = ne;
    if (nignored)
        *nignored = ni;
    bt_state_close(st);
    bt_export_free(&ex);
    return RF_OK;
}
