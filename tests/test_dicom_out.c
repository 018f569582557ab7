/*
 * The DICOM writer of a study read (rf_result_write_dicom): a result built by
 * hand from a real DICOM file (its display rendered as `dicom export` does),
 * with two findings and a saliency map each, written to Secondary Captures
 * and a Comprehensive SR, then
 *   1. every output checked by dicom3tools' dciodvfy (any "Error" fails;
 *      warnings are printed here),
 *   2. read back with radfuse's own reader (UIDs, series, study, pixels) and
 *      with dicom3tools' dckey and dcsrdump (references, patient module, the
 *      SR's coded findings: an implementation other than the writer's),
 *   3. uploaded with the source to an Orthanc this test starts on loopback
 *      (temp config and storage, free port, no DICOM listener, no auth),
 *      which must accept every instance and file them as one study of three
 *      series.
 * Sources: CT_small.dcm of pydicom's files (ISO_IR 100 text, so the
 * character set conversion runs) and a chest radiograph study made from a
 * covid-chestxray row by rf_dataset_study (`radfuse dataset study`).
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dicom_validate.h"
#include "radfuse/datasets.h"
#include "radfuse/imaging.h"
#include "radfuse/render.h"
#include "radfuse/result.h"
#include "testutil.h"

#define SC_CLASS "1.2.840.10008.5.1.4.1.1.7"
#define SR_CLASS "1.2.840.10008.5.1.4.1.1.88.33"

static char *xdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        abort();
    return p;
}

/* A Gaussian blob with its peak (value 1) at (pr, pc), sigma a fifth of the short side. */
static float *blob(int rows, int cols, int pr, int pc)
{
    float *v = test_falloc((int64_t)rows * cols);
    double s = (rows < cols ? rows : cols) / 5.0;
    for (int y = 0; y < rows; y++)
        for (int x = 0; x < cols; x++)
            v[(size_t)y * cols + x] = (float)exp(-((y - pr) * (y - pr) + (x - pc) * (x - pc)) / (2 * s * s));
    return v;
}

/* The result of a read of one image with two findings, one map each. */
static int build_result(const char *src, rf_read_result *r, rf_dicom_image *img)
{
    rf_err err;
    memset(r, 0, sizeof *r);
    if (rf_dicom_read(src, RF_DICOM_PIXELS, img, &err)) {
        CHECKF(0, "%s", err.msg);
        return -1;
    }
    size_t n = (size_t)img->rows * img->columns;
    uint8_t *display = test_xmalloc(n);
    rf_render_info info;
    if (rf_render_display_int(img, 0, NULL, 8, display, &info, &err)) {
        CHECKF(0, "%s", err.msg);
        free(display);
        return -1;
    }
    r->tool_version = xdup("0.1.0");
    r->model.name = xdup("radfuse-test-model");
    r->model.version = xdup("1.0");
    r->model.sha256 = xdup("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    r->saliency = xdup("occlusion");
    r->study.study_instance_uid = xdup(img->study_uid);
    r->nimages = 1;
    r->images = test_xmalloc(sizeof *r->images);
    memset(r->images, 0, sizeof *r->images);
    rf_result_image *im = &r->images[0];
    im->path = xdup(src);
    im->sop_instance_uid = xdup(img->sop_uid);
    im->sop_class_uid = xdup(img->sop_class_uid);
    im->series_instance_uid = xdup(img->series_uid);
    im->study_instance_uid = xdup(img->study_uid);
    im->modality = xdup(img->modality);
    im->used = 1;
    im->reason = xdup("frontal view");
    im->rows = img->rows;
    im->cols = img->columns;
    im->display = display;
    if (info.voi == RF_VOI_APPLIED_WINDOW)
        im->window_center = info.center, im->window_width = info.width;
    r->nfindings = 2;
    r->findings = test_xmalloc(2 * sizeof *r->findings);
    memset(r->findings, 0, 2 * sizeof *r->findings);
    static const struct {
        const char *code, *display, *system, *scode;
        double p, t;
        double fr, fc; /* the peak, as fractions of rows and columns */
    } F[2] = {{"covid19", "COVID-19", "http://snomed.info/sct", "840539006", 0.8731, 0.5, 0.3, 0.7},
              {"pneumonia_bacterial", "Bacterial pneumonia", NULL, NULL, 0.1204, 0.35, 0.75, 0.25}};
    for (int f = 0; f < 2; f++) {
        rf_result_finding *x = &r->findings[f];
        x->code = xdup(F[f].code);
        x->display = xdup(F[f].display);
        x->coding_system = F[f].system ? xdup(F[f].system) : NULL;
        x->coding_code = F[f].scode ? xdup(F[f].scode) : NULL;
        x->probability = F[f].p;
        x->threshold = F[f].t;
        x->positive = F[f].p >= F[f].t;
        x->temperature = 1;
        x->logit = log(F[f].p / (1 - F[f].p));
        x->nmaps = 1;
        x->maps = test_xmalloc(sizeof *x->maps);
        memset(x->maps, 0, sizeof *x->maps);
        x->maps[0].image = 0;
        x->maps[0].peak_row = (int)(F[f].fr * img->rows);
        x->maps[0].peak_col = (int)(F[f].fc * img->columns);
        x->maps[0].values = blob(img->rows, img->columns, x->maps[0].peak_row, x->maps[0].peak_col);
    }
    return 0;
}

/* dckey's value of a top-level key (dicom3tools: a second reader of the
 * output; its tools write to stderr). */
static void dckey(const char *tool, const char *key, const char *path, char *out, size_t cap)
{
    char sout[256];
    char *argv[] = {(char *)tool, "-noerror", "-k", (char *)key, (char *)path, NULL};
    out[0] = 0;
    int rc = test_run(argv, sout, sizeof sout, out, cap);
    CHECKF(rc == 0, "dckey -k %s %s: status %d", key, path, rc);
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' ' || out[n - 1] == '\r'))
        out[--n] = 0;
}

/* ---- Orthanc on loopback ---- */

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

typedef struct orthanc {
    pid_t pid;
    int port;
    char curl[512];
    char log[600];
} orthanc;

/* GET or POST (a file's bytes) on path; returns the parsed JSON body or NULL. */
static cJSON *orthanc_call(const orthanc *o, const char *path, const char *post_file)
{
    static char out[1 << 20];
    char err[4096], url[256], data[1100];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", o->port, path);
    char *get[] = {(char *)o->curl, "-sS", "--fail", "--max-time", "30", url, NULL};
    snprintf(data, sizeof data, "@%s", post_file ? post_file : "");
    char *post[] = {(char *)o->curl, "-sS", "--fail", "--max-time", "30", "-X", "POST", "-H",
                    "Content-Type: application/dicom", "--data-binary", data, url, NULL};
    int rc = test_run(post_file ? post : get, out, sizeof out, err, sizeof err);
    if (rc != 0)
        return NULL;
    return cJSON_Parse(out);
}

static int orthanc_start(orthanc *o, const char *dir)
{
    char bin[512], cfg[600], storage[600];
    memset(o, 0, sizeof *o);
    if (!dv_need_tool("Orthanc", "orthanc", bin, sizeof bin) || !dv_need_tool("curl", "curl", o->curl, sizeof o->curl))
        return -1;
    o->port = free_port();
    int dicom_port = free_port();
    CHECK(o->port > 0 && dicom_port > 0);
    snprintf(storage, sizeof storage, "%s/orthanc-db", dir);
    snprintf(cfg, sizeof cfg, "%s/orthanc.json", dir);
    snprintf(o->log, sizeof o->log, "%s/orthanc.log", dir);
    char json[4096];
    /* RemoteAccessAllowed false: only 127.0.0.1 may talk to it; the DICOM
     * listener is off (uploads go through REST), so nothing listens beyond
     * the HTTP port; no plugins, no peers, no modalities, no jobs kept. */
    int n = snprintf(json, sizeof json,
                     "{\n  \"Name\": \"radfuse-test\",\n  \"StorageDirectory\": \"%s\",\n"
                     "  \"IndexDirectory\": \"%s\",\n  \"HttpPort\": %d,\n  \"DicomPort\": %d,\n"
                     "  \"DicomServerEnabled\": false,\n  \"RemoteAccessAllowed\": false,\n"
                     "  \"AuthenticationEnabled\": false,\n  \"HttpServerEnabled\": true,\n"
                     "  \"Plugins\": [],\n  \"DicomModalities\": {},\n  \"OrthancPeers\": {},\n"
                     "  \"SaveJobs\": false,\n  \"StorageCompression\": false,\n  \"LuaScripts\": []\n}\n",
                     storage, storage, o->port, dicom_port);
    test_write_file(cfg, json, (size_t)n);
    fflush(stdout); /* or the child's freopen writes the buffered lines again */
    o->pid = fork();
    if (o->pid < 0)
        return -1;
    if (o->pid == 0) {
        FILE *lf = freopen(o->log, "w", stdout);
        if (!lf || dup2(fileno(stdout), 2) < 0)
            _exit(127);
        execl(bin, bin, cfg, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300; i++) { /* up to 30 s */
        cJSON *sys = orthanc_call(o, "/system", NULL);
        if (sys) {
            cJSON_Delete(sys);
            return 0;
        }
        int st;
        if (waitpid(o->pid, &st, WNOHANG) == o->pid) {
            o->pid = 0;
            CHECKF(0, "Orthanc exited at start; its log: %s", o->log);
            return -1;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECKF(0, "Orthanc did not answer on 127.0.0.1:%d within 30 s; its log: %s", o->port, o->log);
    return -1;
}

static void orthanc_stop(orthanc *o)
{
    if (o->pid <= 0)
        return;
    kill(o->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        int st;
        if (waitpid(o->pid, &st, WNOHANG) == o->pid) {
            o->pid = 0;
            return;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(o->pid, SIGKILL);
    waitpid(o->pid, NULL, 0);
    o->pid = 0;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Uploads the files; each must be accepted, and Orthanc must hold one study
 * (study_uid) of three series: the source's modality, OT and SR. */
static void orthanc_check(const char *dir, const char *const *files, int nfiles, const char *study_uid,
                          const char *src_modality)
{
    orthanc o;
    if (orthanc_start(&o, dir) == 0) {
        for (int i = 0; i < nfiles; i++) {
            cJSON *res = orthanc_call(&o, "/instances", files[i]);
            CHECKF(res != NULL, "Orthanc refused %s (see %s)", files[i], o.log);
            if (res)
                CHECKF(!strcmp(jstr(res, "Status"), "Success"), "Orthanc: %s: Status '%s'", files[i],
                       jstr(res, "Status"));
            cJSON_Delete(res);
        }
        cJSON *studies = orthanc_call(&o, "/studies", NULL);
        CHECKF(cJSON_GetArraySize(studies) == 1, "Orthanc holds %d studies, not 1", cJSON_GetArraySize(studies));
        const cJSON *sid = cJSON_GetArrayItem(studies, 0);
        if (cJSON_IsString(sid)) {
            char path[128];
            snprintf(path, sizeof path, "/studies/%s", sid->valuestring);
            cJSON *st = orthanc_call(&o, path, NULL);
            const cJSON *series = cJSON_GetObjectItemCaseSensitive(st, "Series");
            CHECKF(cJSON_GetArraySize(series) == 3, "Orthanc's study has %d series, not 3", cJSON_GetArraySize(series));
            CHECK(!strcmp(jstr(cJSON_GetObjectItemCaseSensitive(st, "MainDicomTags"), "StudyInstanceUID"), study_uid));
            int seen_src = 0, seen_ot = 0, seen_sr = 0;
            const cJSON *s;
            cJSON_ArrayForEach(s, series)
            {
                if (!cJSON_IsString(s))
                    continue;
                snprintf(path, sizeof path, "/series/%s", s->valuestring);
                cJSON *se = orthanc_call(&o, path, NULL);
                const char *mod = jstr(cJSON_GetObjectItemCaseSensitive(se, "MainDicomTags"), "Modality");
                int ninst = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(se, "Instances"));
                if (!strcmp(mod, "OT")) {
                    seen_ot = 1;
                    CHECKF(ninst == 2, "Orthanc's OT series has %d instances, not 2", ninst);
                } else if (!strcmp(mod, "SR")) {
                    seen_sr = 1;
                    CHECK(ninst == 1);
                } else if (!strcmp(mod, src_modality)) {
                    seen_src = 1;
                    CHECK(ninst == 1);
                }
                cJSON_Delete(se);
            }
            CHECKF(seen_src && seen_ot && seen_sr, "Orthanc's series: source %d, OT %d, SR %d", seen_src, seen_ot,
                   seen_sr);
            cJSON_Delete(st);
        }
        cJSON_Delete(studies);
        printf("Orthanc on 127.0.0.1:%d accepted %d instances: one study, 3 series\n", o.port, nfiles);
    }
    orthanc_stop(&o);
}

/* ---- one source ---- */

static void run_case(const char *src, const char *dciodvfy, const char *dckey_bin, const char *dcsrdump,
                     const char *dcdump)
{
    printf("source %s\n", src);
    rf_read_result r;
    rf_dicom_image img;
    memset(&img, 0, sizeof img);
    if (build_result(src, &r, &img)) {
        rf_dicom_image_free(&img);
        return;
    }
    char tmp[256], outs[3][600];
    test_tmpdir(tmp, sizeof tmp);
    rf_err err;
    int rc = rf_result_write_dicom(&r, tmp, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) {
        rf_result_free(&r);
        rf_dicom_image_free(&img);
        return;
    }
    char src_pid[256], src_name[256];
    dckey(dckey_bin, "PatientID", src, src_pid, sizeof src_pid);
    dckey(dckey_bin, "PatientName", src, src_name, sizeof src_name);
    char sc_series[RF_DICOM_STR] = "";
    int warnings = 0;
    for (size_t f = 0; f < 2; f++) {
        rf_result_map *m = &r.findings[f].maps[0];
        CHECK(m->dicom != NULL && m->sop_instance_uid != NULL);
        if (!m->dicom || !m->sop_instance_uid)
            continue;
        CHECK(strncmp(m->sop_instance_uid, "2.25.", 5) == 0 && strlen(m->sop_instance_uid) <= 64);
        snprintf(outs[f], sizeof outs[f], "%s/%s", tmp, m->dicom);
        CHECKF(dv_dciodvfy(dciodvfy, outs[f], &warnings) == 0, "%s", outs[f]);
        /* radfuse's reader */
        rf_dicom_image sc;
        memset(&sc, 0, sizeof sc);
        rc = rf_dicom_read(outs[f], RF_DICOM_PIXELS, &sc, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc)
            continue;
        CHECK(!strcmp(sc.study_uid, img.study_uid));
        CHECK(!strcmp(sc.sop_uid, m->sop_instance_uid));
        CHECK(!strcmp(sc.sop_class_uid, SC_CLASS));
        CHECK(!strcmp(sc.modality, "OT"));
        CHECK(!strcmp(sc.conversion_type, "WSD"));
        CHECK(!strcmp(sc.series_description, "radfuse saliency"));
        CHECK(strcmp(sc.series_uid, img.series_uid) != 0);
        if (f == 0)
            snprintf(sc_series, sizeof sc_series, "%s", sc.series_uid);
        else
            CHECKF(!strcmp(sc.series_uid, sc_series), "the two Secondary Captures are in different series");
        CHECK(sc.rows == img.rows && sc.columns == img.columns && sc.out_samples == 3 && sc.sample_bytes == 1);
        if (sc.pixels && sc.rows == img.rows && sc.columns == img.columns && sc.out_samples == 3) {
            const uint8_t *p = sc.pixels, *d = r.images[0].display;
            /* far from the blob (a corner the blob's tail leaves below the floor): gray as displayed */
            size_t far = (size_t)(f == 0 ? (img.rows - 1) * img.columns : img.columns - 1);
            CHECKF(p[far * 3] == d[far] && p[far * 3 + 1] == d[far] && p[far * 3 + 2] == d[far],
                   "pixel %zu: %u %u %u, displayed %u", far, p[far * 3], p[far * 3 + 1], p[far * 3 + 2], d[far]);
            /* at the peak (value 1): half the image, half viridis' yellow (253, 231, 37) */
            size_t pk = (size_t)m->peak_row * img.columns + m->peak_col;
            const int yellow[3] = {253, 231, 37};
            for (int c = 0; c < 3; c++) {
                double want = 0.5 * d[pk] + 0.5 * yellow[c];
                CHECKF(fabs(p[pk * 3 + c] - want) <= 1.0, "peak channel %d: %u, want %.1f", c, p[pk * 3 + c], want);
            }
        }
        rf_dicom_image_free(&sc);
        /* dicom3tools' reader: the reference to the source, and the patient module copied */
        char v[4096];
        static char dump[1 << 20];
        char *dargv[] = {(char *)dcdump, outs[f], NULL};
        rc = test_run(dargv, v, sizeof v, dump, sizeof dump);
        CHECKF(rc == 0, "dcdump %s: status %d", outs[f], rc);
        char want[200];
        snprintf(want, sizeof want, "Referenced SOP Instance UID");
        const char *at = strstr(dump, "Source Image Sequence");
        at = at ? strstr(at, want) : NULL;
        CHECKF(at && strstr(at, img.sop_uid), "the Source Image Sequence does not reference the source image");
        dckey(dckey_bin, "PatientID", outs[f], v, sizeof v);
        CHECK(!strcmp(v, src_pid));
        dckey(dckey_bin, "PatientName", outs[f], v, sizeof v);
        CHECK(!strcmp(v, src_name));
        dckey(dckey_bin, "BurnedInAnnotation", outs[f], v, sizeof v);
        CHECK(!strcmp(v, "NO"));
    }
    /* the SR */
    snprintf(outs[2], sizeof outs[2], "%s/dicom/sr.dcm", tmp);
    CHECKF(dv_dciodvfy(dciodvfy, outs[2], &warnings) == 0, "%s", outs[2]);
    rf_dicom_image sr;
    memset(&sr, 0, sizeof sr);
    rc = rf_dicom_read(outs[2], RF_DICOM_NO_PIXELS_OK, &sr, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(!strcmp(sr.study_uid, img.study_uid));
        CHECK(!strcmp(sr.sop_class_uid, SR_CLASS));
        CHECK(!strcmp(sr.modality, "SR"));
        CHECK(strncmp(sr.sop_uid, "2.25.", 5) == 0 && strncmp(sr.series_uid, "2.25.", 5) == 0);
        CHECK(strcmp(sr.series_uid, img.series_uid) != 0 && strcmp(sr.series_uid, sc_series) != 0);
        CHECK(!sr.has_pixel_data);
    }
    rf_dicom_image_free(&sr);
    char v[4096];
    dckey(dckey_bin, "PatientID", outs[2], v, sizeof v);
    CHECK(!strcmp(v, src_pid));
    /* the content tree as dicom3tools reads it */
    static char dump[1 << 20], ldump[1 << 20];
    char *argv[] = {(char *)dcsrdump, outs[2], NULL};
    rc = test_run(argv, v, sizeof v, dump, sizeof dump);
    CHECKF(rc == 0, "dcsrdump: status %d", rc);
    char *largv[] = {(char *)dcdump, outs[2], NULL};
    rc = test_run(largv, v, sizeof v, ldump, sizeof ldump);
    CHECKF(rc == 0, "dcdump: status %d", rc);
    CHECKF(strstr(dump, img.sop_uid) != NULL, "the SR does not reference the source image");
    for (size_t f = 0; f < 2; f++)
        if (r.findings[f].maps[0].sop_instance_uid)
            CHECKF(strstr(dump, r.findings[f].maps[0].sop_instance_uid) != NULL,
                   "the SR does not reference the saliency image of finding %zu", f);
    CHECKF(strstr(dump, "840539006") && strstr(dump, "SCT"), "the SR lacks COVID-19's SNOMED code");
    /* a model code longer than 16 characters goes to Long Code Value (dcsrdump does not show that one) */
    CHECKF(strstr(ldump, "Long Code Value") && strstr(ldump, "<pneumonia_bacterial") && strstr(dump, "99RADFUSE"),
           "the SR lacks the private code");
    CHECKF(strstr(dump, "0.8731") && strstr(dump, "0.1204"), "the SR lacks the probabilities");
    CHECKF(strstr(dump, "Positive") && strstr(dump, "Negative"), "the SR lacks the thresholded results");
    CHECKF(strstr(dump, "radfuse-test-model") && strstr(dump, "Algorithm Version"), "the SR lacks the algorithm");
    if (test_verbose())
        printf("%s", dump);
    printf("dciodvfy: 3 outputs, no errors, %d warnings\n", warnings);

    /* Orthanc: the source and the three outputs, one study of three series */
    const char *files[4] = {src, outs[0], outs[1], outs[2]};
    orthanc_check(tmp, files, 4, img.study_uid, img.modality);

    /* bad input: a map on an image index out of range is refused, naming it */
    r.findings[1].maps[0].image = 7;
    rc = rf_result_write_dicom(&r, tmp, &err);
    CHECKF(rc != 0 && strstr(err.msg, "out of range"), "rc %d: %s", rc, err.msg);
    rf_result_free(&r);
    rf_dicom_image_free(&img);
}

int main(void)
{
    const char *shared = test_shared_dir();
    char dciodvfy[512], dckey_bin[512], dcsrdump[512], dcdump[512];
    if (!dv_need_tool("dciodvfy", "dicom3tools", dciodvfy, sizeof dciodvfy) ||
        !dv_need_tool("dckey", "dicom3tools", dckey_bin, sizeof dckey_bin) ||
        !dv_need_tool("dcsrdump", "dicom3tools", dcsrdump, sizeof dcsrdump) ||
        !dv_need_tool("dcdump", "dicom3tools", dcdump, sizeof dcdump))
        return test_finish("test_dicom_out");
    char src[1024];
    snprintf(src, sizeof src, "%s/data/dicom/pydicom-test-files/CT_small.dcm", shared);
    run_case(src, dciodvfy, dckey_bin, dcsrdump, dcdump);
    /* the end-to-end study: a chest radiograph made from a covid-chestxray row */
    char tmp[256], data[1024];
    test_tmpdir(tmp, sizeof tmp);
    snprintf(data, sizeof data, "%s/data/covid-chestxray", shared);
    rf_dataset_study_info info;
    rf_err err;
    int rc = rf_dataset_study(data, 174, NULL, tmp, &info, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        snprintf(src, sizeof src, "%s/%s", tmp, info.dicom);
        run_case(src, dciodvfy, dckey_bin, dcsrdump, dcdump);
    }
    return test_finish("test_dicom_out");
}
