/*
 * Choosing the images a model sees (include/radfuse/study.h). Everything
 * here is tables: SOP classes, the skip rules every modality goes through, the
 * per-modality rules, and the words that hint at a view. Adding a modality
 * is a row in MODALITY_RULES, not a new branch. Every instance gets a reason:
 * the first skip rule that matches, or the modality rule's verdict.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/study.h"

/* snprintf that may cut: reasons quote descriptions of any length */
static void say(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

/* ---- SOP classes ---- */

enum sop_kind { SOP_IMAGE, SOP_NON_IMAGE, SOP_SECONDARY_CAPTURE, SOP_FOR_PROCESSING, SOP_FOR_PRESENTATION };

static const struct sop_rule {
    const char *uid;
    int subtree; /* also matches uid + ".anything" */
    enum sop_kind kind;
    const char *label;
} SOP_RULES[] = {
    {"1.2.840.10008.5.1.4.1.1.7", 1, SOP_SECONDARY_CAPTURE, "secondary capture"},
    {"1.2.840.10008.5.1.4.1.1.88.59", 0, SOP_NON_IMAGE, "key object selection"},
    {"1.2.840.10008.5.1.4.1.1.88", 1, SOP_NON_IMAGE, "structured report"},
    {"1.2.840.10008.5.1.4.1.1.11", 1, SOP_NON_IMAGE, "presentation state"},
    {"1.2.840.10008.5.1.4.1.1.9", 1, SOP_NON_IMAGE, "waveform"},
    {"1.2.840.10008.5.1.4.1.1.104", 1, SOP_NON_IMAGE, "encapsulated document"},
    {"1.2.840.10008.5.1.4.1.1.481.1", 0, SOP_IMAGE, "RT image"}, /* the one RT class that is a projection image */
    {"1.2.840.10008.5.1.4.1.1.481", 1, SOP_NON_IMAGE, "radiotherapy object"},
    {"1.2.840.10008.5.1.4.1.1.66", 1, SOP_NON_IMAGE, "raw data, registration or segmentation"},
    {"1.2.840.10008.5.1.4.1.1.67", 0, SOP_NON_IMAGE, "real world value mapping"},
    {"1.2.840.10008.5.1.4.1.1.68", 1, SOP_NON_IMAGE, "surface"},
    {"1.2.840.10008.5.1.4.1.1.78", 1, SOP_NON_IMAGE, "ophthalmic measurements"},
    {"1.2.840.10008.5.1.4.1.1.79", 1, SOP_NON_IMAGE, "ophthalmic measurements"},
    {"1.2.840.10008.5.1.4.1.1.82", 1, SOP_NON_IMAGE, "ophthalmic measurements"},
    {"1.2.840.10008.5.1.4.1.1.90", 1, SOP_NON_IMAGE, "content assessment"},
    {"1.2.840.10008.5.1.4.1.1.200", 1, SOP_NON_IMAGE, "protocol"},
    {"1.2.840.10008.5.1.4.34", 1, SOP_NON_IMAGE, "radiotherapy object"},
    {"1.2.840.10008.5.1.4.38", 1, SOP_NON_IMAGE, "hanging protocol"},
    {"1.2.840.10008.5.1.4.39", 1, SOP_NON_IMAGE, "color palette"},
    {"1.2.840.10008.1.3.10", 0, SOP_NON_IMAGE, "DICOMDIR"},
    /* projection radiography: the FOR PROCESSING classes have a FOR PRESENTATION twin class */
    {"1.2.840.10008.5.1.4.1.1.1.1.1", 0, SOP_FOR_PROCESSING, "DX for processing"},
    {"1.2.840.10008.5.1.4.1.1.1.2.1", 0, SOP_FOR_PROCESSING, "MG for processing"},
    {"1.2.840.10008.5.1.4.1.1.1.3.1", 0, SOP_FOR_PROCESSING, "intra-oral for processing"},
    {"1.2.840.10008.5.1.4.1.1.1.1", 0, SOP_FOR_PRESENTATION, "DX for presentation"},
    {"1.2.840.10008.5.1.4.1.1.1.2", 0, SOP_FOR_PRESENTATION, "MG for presentation"},
    {"1.2.840.10008.5.1.4.1.1.1.3", 0, SOP_FOR_PRESENTATION, "intra-oral for presentation"},
};

static const struct sop_rule *sop_rule(const char *uid)
{
    if (!uid || !*uid)
        return NULL;
    for (size_t k = 0; k < sizeof SOP_RULES / sizeof *SOP_RULES; k++) {
        const struct sop_rule *r = &SOP_RULES[k];
        size_t n = strlen(r->uid);
        if (strncmp(uid, r->uid, n) == 0 && (uid[n] == 0 || (r->subtree && uid[n] == '.')))
            return r;
    }
    return NULL;
}

const char *rf_sop_class_non_image(const char *uid)
{
    const struct sop_rule *r = sop_rule(uid);
    return r && r->kind == SOP_NON_IMAGE ? r->label : NULL;
}

int rf_sop_class_secondary_capture(const char *uid)
{
    const struct sop_rule *r = sop_rule(uid);
    return r && r->kind == SOP_SECONDARY_CAPTURE;
}

/* ---- words ---- */

/* Calls f on each upper-cased alphanumeric word of s; stops when f returns nonzero. */
static int each_word(const char *s, int (*f)(const char *word, void *ctx), void *ctx)
{
    char w[64];
    size_t n = 0;
    for (const char *p = s;; p++) {
        if (*p && isalnum((unsigned char)*p)) {
            if (n + 1 < sizeof w)
                w[n++] = (char)toupper((unsigned char)*p);
            continue;
        }
        if (n) {
            w[n] = 0;
            n = 0;
            int r = f(w, ctx);
            if (r)
                return r;
        }
        if (!*p)
            return 0;
    }
}

static int word_is(const char *word, void *ctx)
{
    return strcmp(word, (const char *)ctx) == 0;
}

/* s contains word as a whole word (case-insensitive, any separator). */
static int has_word(const char *s, const char *word)
{
    return each_word(s, word_is, (void *)word);
}

/* value is one of the space-separated words of list */
static int in_list(const char *value, const char *list)
{
    return *value && has_word(list, value) && strchr(value, ' ') == NULL;
}

/* ---- the rules every modality goes through ---- */

static const char *const LOCALIZER_WORDS[] = {"LOCALIZER", "LOCALISER", "SCOUT", "SURVEY", "PILOT",
                                              "TOPOGRAM", "SCANOGRAM", "SCOUTVIEW", "LOCATOR"};

static int skip_non_image(const rf_instance *in, char *why, size_t n)
{
    const char *label = rf_sop_class_non_image(in->attrs.sop_class_uid);
    if (label) {
        say(why, n, "not an image: %s (SOP class %s)", label, in->attrs.sop_class_uid);
        return 1;
    }
    if (!in->attrs.has_pixel_data) {
        say(why, n, "not an image: no pixel data");
        return 1;
    }
    return 0;
}

static int skip_secondary_capture(const rf_instance *in, char *why, size_t n)
{
    if (rf_sop_class_secondary_capture(in->attrs.sop_class_uid)) {
        say(why, n, "secondary capture (SOP class %s)", in->attrs.sop_class_uid);
        return 1;
    }
    if (*in->attrs.conversion_type) {
        say(why, n, "secondary capture (ConversionType %s)", in->attrs.conversion_type);
        return 1;
    }
    return 0;
}

static int skip_localizer(const rf_instance *in, char *why, size_t n)
{
    if (has_word(in->attrs.image_type, "LOCALIZER")) {
        say(why, n, "localizer (ImageType %s)", in->attrs.image_type);
        return 1;
    }
    for (size_t k = 0; k < sizeof LOCALIZER_WORDS / sizeof *LOCALIZER_WORDS; k++)
        if (has_word(in->attrs.series_description, LOCALIZER_WORDS[k])) {
            say(why, n, "localizer (SeriesDescription '%s')", in->attrs.series_description);
            return 1;
        }
    return 0;
}

/* Value 2 of ImageType is PRIMARY (made by the acquisition) or SECONDARY
 * (made afterwards: reformats, projections, screen saves). */
static int skip_derived_secondary(const rf_instance *in, char *why, size_t n)
{
    const char *t = in->attrs.image_type;
    const char *second = strchr(t, '\\');
    if (second && strncmp(second + 1, "SECONDARY", 9) == 0 && (second[10] == 0 || second[10] == '\\')) {
        say(why, n, "derived secondary image (ImageType %s): a reformat, projection or screen save", t);
        return 1;
    }
    return 0;
}

static const struct skip_rule {
    int (*applies)(const rf_instance *in, char *why, size_t n);
} SKIP_RULES[] = {
    {skip_non_image},
    {skip_secondary_capture},
    {skip_localizer},
    {skip_derived_secondary},
};

/* ---- per-modality rules ---- */

enum strategy {
    BY_VIEW,   /* each image on its own evidence of the view */
    BY_SERIES, /* one series per study and modality */
};

static const struct modality_rule {
    const char *modality;
    enum strategy strategy;
    const char *accept;       /* BY_VIEW: ViewPosition values selected */
    const char *accept_label; /* what those are */
    const char *lateral;      /* BY_VIEW: ViewPosition values skipped as lateral */
    int hints;                /* BY_VIEW: without ViewPosition, descriptions, ImageType, PatientOrientation */
    int prefer_axial;         /* BY_SERIES */
} MODALITY_RULES[] = {
    {"CR", BY_VIEW, "PA AP", "frontal", "LL RL LAT LATERAL LLAT RLAT", 1, 0},
    {"DX", BY_VIEW, "PA AP", "frontal", "LL RL LAT LATERAL LLAT RLAT", 1, 0},
    {"MG", BY_VIEW, "CC MLO", "a standard screening view", "", 0, 0},
    {"CT", BY_SERIES, NULL, NULL, NULL, 0, 1},
    {"MR", BY_SERIES, NULL, NULL, NULL, 0, 1},
};

static const struct modality_rule *modality_rule(const char *modality)
{
    for (size_t k = 0; k < sizeof MODALITY_RULES / sizeof *MODALITY_RULES; k++)
        if (strcmp(MODALITY_RULES[k].modality, modality) == 0)
            return &MODALITY_RULES[k];
    return NULL;
}

/* ---- views ---- */

enum view { VIEW_UNKNOWN, VIEW_FRONTAL, VIEW_LATERAL, VIEW_OBLIQUE, VIEW_OTHER, VIEW_MIXED };

static const char *const VIEW_NAMES[] = {"unknown", "frontal", "lateral", "oblique", "other", "several views"};

static const struct view_word {
    const char *word;
    enum view view;
} VIEW_WORDS[] = {
    {"PA", VIEW_FRONTAL},       {"AP", VIEW_FRONTAL},        {"FRONTAL", VIEW_FRONTAL},
    {"FRONT", VIEW_FRONTAL},    {"POSTEROANTERIOR", VIEW_FRONTAL}, {"ANTEROPOSTERIOR", VIEW_FRONTAL},
    {"LAT", VIEW_LATERAL},      {"LATERAL", VIEW_LATERAL},   {"LL", VIEW_LATERAL},
    {"RL", VIEW_LATERAL},       {"LLAT", VIEW_LATERAL},      {"RLAT", VIEW_LATERAL},
    {"SEITLICH", VIEW_LATERAL}, {"OBL", VIEW_OBLIQUE},       {"OBLI", VIEW_OBLIQUE},
    {"OBLIQUE", VIEW_OBLIQUE},  {"LAO", VIEW_OBLIQUE},       {"RAO", VIEW_OBLIQUE},
    {"LPO", VIEW_OBLIQUE},      {"RPO", VIEW_OBLIQUE},
};

static int collect_view(const char *word, void *ctx)
{
    enum view *v = ctx;
    for (size_t k = 0; k < sizeof VIEW_WORDS / sizeof *VIEW_WORDS; k++)
        if (strcmp(word, VIEW_WORDS[k].word) == 0) {
            enum view w = VIEW_WORDS[k].view;
            *v = *v == VIEW_UNKNOWN || *v == w ? w : VIEW_MIXED;
        }
    return 0;
}

/* The one view a text's words name; VIEW_MIXED when it names several, VIEW_UNKNOWN when none.
 * Abbreviations with dots ("p.a.", "a.-p.") are read without them when the words alone name nothing. */
static enum view words_view(const char *text)
{
    enum view v = VIEW_UNKNOWN;
    each_word(text, collect_view, &v);
    if (v == VIEW_UNKNOWN && strchr(text, '.')) {
        char undotted[RF_DICOM_TEXT];
        size_t n = 0;
        for (const char *p = text; *p && n + 1 < sizeof undotted; p++)
            if (*p != '.' && !(*p == '-' && p > text && p[-1] == '.'))
                undotted[n++] = *p;
        undotted[n] = 0;
        each_word(undotted, collect_view, &v);
    }
    return v;
}

/* PatientOrientation row\column: rows running left-right with columns
 * head-foot is a frontal projection, anterior-posterior rows a lateral. */
static enum view orientation_view(const char *po)
{
    const char *sep = strchr(po, '\\');
    if (!sep || !po[0] || !sep[1])
        return VIEW_UNKNOWN;
    char row = po[0], col = sep[1];
    int col_hf = col == 'H' || col == 'F';
    if (!col_hf)
        return VIEW_UNKNOWN;
    if (row == 'L' || row == 'R')
        return VIEW_FRONTAL;
    if (row == 'A' || row == 'P')
        return VIEW_LATERAL;
    return VIEW_UNKNOWN;
}

typedef struct view_evidence {
    enum view view;
    char what[RF_REASON]; /* e.g. "ViewPosition AP" */
} view_evidence;

/* The first evidence of the view, in order: ViewPosition, SeriesDescription,
 * ImageType, PatientOrientation (only ViewPosition when the rule has no hints). */
static void find_view(const rf_instance *in, const struct modality_rule *r, view_evidence *ev)
{
    const rf_dicom_image *m = &in->attrs;
    ev->view = VIEW_UNKNOWN;
    ev->what[0] = 0;
    if (*m->view) {
        char v[RF_DICOM_STR];
        size_t k = 0;
        for (; m->view[k] && k + 1 < sizeof v; k++)
            v[k] = (char)toupper((unsigned char)m->view[k]);
        v[k] = 0;
        ev->view = in_list(v, r->accept) ? VIEW_FRONTAL : in_list(v, r->lateral) ? VIEW_LATERAL : VIEW_OTHER;
        say(ev->what, sizeof ev->what, "ViewPosition %s", m->view);
        return;
    }
    if (!r->hints)
        return;
    enum view v = words_view(m->series_description);
    if (v != VIEW_UNKNOWN && v != VIEW_MIXED) {
        ev->view = v;
        say(ev->what, sizeof ev->what, "SeriesDescription '%s'", m->series_description);
        return;
    }
    v = words_view(m->image_type);
    if (v != VIEW_UNKNOWN && v != VIEW_MIXED) {
        ev->view = v;
        say(ev->what, sizeof ev->what, "ImageType %s", m->image_type);
        return;
    }
    v = orientation_view(m->patient_orientation);
    if (v != VIEW_UNKNOWN) {
        ev->view = v;
        say(ev->what, sizeof ev->what, "PatientOrientation %s", m->patient_orientation);
    }
}

static int for_processing(const rf_dicom_image *m)
{
    const struct sop_rule *r = sop_rule(m->sop_class_uid);
    return strcmp(m->presentation_intent, "FOR PROCESSING") == 0 || (r && r->kind == SOP_FOR_PROCESSING);
}

static int for_presentation(const rf_dicom_image *m)
{
    const struct sop_rule *r = sop_rule(m->sop_class_uid);
    return strcmp(m->presentation_intent, "FOR PRESENTATION") == 0 || (r && r->kind == SOP_FOR_PRESENTATION);
}

/* The FOR PRESENTATION image made from the same exposure: same study and
 * modality, ViewPosition and laterality; -1 when there is none. */
static long presentation_twin(const rf_studies *s, const rf_study *st, const rf_instance *in)
{
    for (size_t j = 0; j < st->nseries; j++) {
        const rf_series *se = &s->series[st->series[j]];
        for (size_t k = 0; k < se->count; k++) {
            const rf_instance *o = &s->inst[se->order[k]];
            if (o != in && for_presentation(&o->attrs) && strcmp(o->attrs.modality, in->attrs.modality) == 0 &&
                strcmp(o->attrs.view, in->attrs.view) == 0 && strcmp(o->attrs.laterality, in->attrs.laterality) == 0)
                return (long)se->order[k];
        }
    }
    return -1;
}

/* A note when the words of the description disagree with ViewPosition. */
static void disagreement(const rf_instance *in, enum view v, char *note, size_t n)
{
    note[0] = 0;
    enum view d = words_view(in->attrs.series_description);
    if (d != VIEW_UNKNOWN && d != VIEW_MIXED && d != v)
        say(note, n, " (SeriesDescription '%s' suggests %s)", in->attrs.series_description, VIEW_NAMES[d]);
}

static void select_by_view(rf_studies *s, rf_study *st, const struct modality_rule *r, const char *modality,
                           unsigned char *pending)
{
    int known_frontal = 0;
    for (size_t j = 0; j < st->nseries; j++) {
        const rf_series *se = &s->series[st->series[j]];
        for (size_t k = 0; k < se->count; k++) {
            size_t i = se->order[k];
            rf_instance *in = &s->inst[i];
            if (!pending[i] || strcmp(in->attrs.modality, modality) != 0)
                continue;
            if (for_processing(&in->attrs)) {
                long twin = presentation_twin(s, st, in);
                if (twin >= 0) {
                    say(in->reason, sizeof in->reason, "FOR PROCESSING: its FOR PRESENTATION twin %s is used",
                             s->inst[twin].name);
                    pending[i] = 0;
                    continue;
                }
            }
            view_evidence ev;
            find_view(in, r, &ev);
            char note[RF_REASON];
            switch (ev.view) {
            case VIEW_FRONTAL:
                disagreement(in, ev.view, note, sizeof note);
                in->selected = 1;
                say(in->reason, sizeof in->reason, "%s: %s%s%s", r->accept_label, ev.what, note,
                         for_processing(&in->attrs) ? "; FOR PROCESSING, no FOR PRESENTATION twin" : "");
                known_frontal = 1;
                pending[i] = 0;
                break;
            case VIEW_LATERAL:
                say(in->reason, sizeof in->reason, "lateral: %s", ev.what);
                pending[i] = 0;
                break;
            case VIEW_OBLIQUE:
                say(in->reason, sizeof in->reason, "oblique: %s", ev.what);
                pending[i] = 0;
                break;
            case VIEW_OTHER:
                say(in->reason, sizeof in->reason, "not %s: %s", r->accept_label, ev.what);
                pending[i] = 0;
                break;
            default:
                break; /* unknown: decided below, once the study is seen */
            }
        }
    }
    for (size_t j = 0; j < st->nseries; j++) {
        const rf_series *se = &s->series[st->series[j]];
        for (size_t k = 0; k < se->count; k++) {
            size_t i = se->order[k];
            rf_instance *in = &s->inst[i];
            if (!pending[i] || strcmp(in->attrs.modality, modality) != 0)
                continue;
            const char *what = r->hints ? "no ViewPosition, and no view in SeriesDescription, ImageType or "
                                          "PatientOrientation"
                                        : "no ViewPosition";
            if (known_frontal) {
                say(in->reason, sizeof in->reason, "view unknown (%s): the study has %s images", what,
                         r->accept_label);
            } else {
                in->selected = 1;
                say(in->reason, sizeof in->reason,
                         "view unknown (%s): selected, no image of the study is known to be %s", what,
                         r->accept_label);
            }
            pending[i] = 0;
        }
    }
}

/* ---- series ---- */

typedef struct series_score {
    long slices;  /* frames of the usable instances */
    int axial;    /* every usable instance's normal within ~37 degrees of the z axis */
    int original; /* every usable instance's ImageType starts with ORIGINAL */
    const char *plane;
} series_score;

static const char *plane_of(const rf_dicom_image *m)
{
    if (!m->has_orientation)
        return "no orientation";
    const double *r = m->orientation, *c = m->orientation + 3;
    double n[3] = {r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]};
    double len = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
    if (!(len > 1e-6))
        return "no orientation";
    double x = fabs(n[0]) / len, y = fabs(n[1]) / len, z = fabs(n[2]) / len;
    if (z >= 0.8)
        return "axial";
    if (x >= 0.8)
        return "sagittal";
    if (y >= 0.8)
        return "coronal";
    return "oblique";
}

static series_score score_series(const rf_studies *s, const rf_series *se, const unsigned char *pending)
{
    series_score sc = {0, 1, 1, NULL};
    for (size_t k = 0; k < se->count; k++) {
        const rf_instance *in = &s->inst[se->order[k]];
        if (!pending[se->order[k]])
            continue;
        sc.slices += in->attrs.frames > 0 ? in->attrs.frames : 1;
        const char *p = plane_of(&in->attrs);
        if (!sc.plane)
            sc.plane = p;
        else if (strcmp(sc.plane, p) != 0)
            sc.plane = "mixed planes";
        sc.original &= strncmp(in->attrs.image_type, "ORIGINAL", 8) == 0;
    }
    sc.axial = sc.plane && strcmp(sc.plane, "axial") == 0;
    if (!sc.plane)
        sc.plane = "none";
    return sc;
}

/* better than: axial first (when preferred), then ORIGINAL, then more slices;
 * ties keep the series order (SeriesNumber, UID) */
static int series_better(const series_score *a, const series_score *b, int prefer_axial)
{
    if (prefer_axial && a->axial != b->axial)
        return a->axial > b->axial;
    if (a->original != b->original)
        return a->original > b->original;
    return a->slices > b->slices;
}

static void describe_series(const rf_series *se, const series_score *sc, char *out, size_t n)
{
    char num[32] = "";
    if (se->has_number)
        say(num, sizeof num, "#%d ", se->number);
    say(out, n, "series %s'%s' (%s, %s, %ld slice%s)", num, se->description, sc->plane,
             sc->original ? "ORIGINAL" : "not ORIGINAL", sc->slices, sc->slices == 1 ? "" : "s");
}

static void select_by_series(rf_studies *s, rf_study *st, const struct modality_rule *r, const char *modality,
                             unsigned char *pending)
{
    long best = -1;
    series_score best_sc = {0};
    int candidates = 0;
    for (size_t j = 0; j < st->nseries; j++) {
        const rf_series *se = &s->series[st->series[j]];
        if (strcmp(se->modality, modality) != 0)
            continue;
        series_score sc = score_series(s, se, pending);
        if (!sc.slices)
            continue;
        candidates++;
        if (best < 0 || series_better(&sc, &best_sc, r->prefer_axial)) {
            best = (long)st->series[j];
            best_sc = sc;
        }
    }
    if (best < 0)
        return;
    char chosen[RF_REASON];
    describe_series(&s->series[best], &best_sc, chosen, sizeof chosen);
    const char *order = r->prefer_axial ? "axial, then ORIGINAL, then most slices" : "ORIGINAL, then most slices";
    say(s->series[best].note, sizeof s->series[best].note, "chosen for %s: the best of %d candidate series (%s)",
             modality, candidates, order);
    for (size_t j = 0; j < st->nseries; j++) {
        rf_series *se = &s->series[st->series[j]];
        if (strcmp(se->modality, modality) != 0)
            continue;
        series_score sc = score_series(s, se, pending);
        char mine[RF_REASON];
        describe_series(se, &sc, mine, sizeof mine);
        for (size_t k = 0; k < se->count; k++) {
            size_t i = se->order[k];
            rf_instance *in = &s->inst[i];
            if (!pending[i] || strcmp(in->attrs.modality, modality) != 0)
                continue;
            if ((long)st->series[j] == best) {
                in->selected = 1;
                say(in->reason, sizeof in->reason, "%s chosen: %s of %d candidate series", mine,
                         candidates == 1 ? "the only one" : "the best", candidates);
            } else {
                say(in->reason, sizeof in->reason, "%s not chosen: %s is used (%s)", mine, chosen, order);
            }
            pending[i] = 0;
        }
    }
}

void rf_select_studies(rf_studies *s)
{
    unsigned char *pending = calloc(s->ninst ? s->ninst : 1, 1);
    /* without memory every instance is skipped, each with that reason */
    for (size_t i = 0; i < s->ninst; i++) {
        rf_instance *in = &s->inst[i];
        in->selected = 0;
        if (in->duplicate_of >= 0)
            continue; /* its reason was set when the duplicate was found */
        if (!pending) {
            say(in->reason, sizeof in->reason, "not chosen: out of memory while selecting");
            continue;
        }
        in->reason[0] = 0;
        for (size_t k = 0; k < sizeof SKIP_RULES / sizeof *SKIP_RULES && !in->reason[0]; k++)
            SKIP_RULES[k].applies(in, in->reason, sizeof in->reason);
        if (in->reason[0])
            continue;
        const struct modality_rule *r = modality_rule(in->attrs.modality);
        if (!r) {
            if (*in->attrs.modality)
                say(in->reason, sizeof in->reason, "no selection rules for modality %s", in->attrs.modality);
            else
                say(in->reason, sizeof in->reason, "no Modality: no selection rules apply");
            continue;
        }
        pending[i] = 1;
    }
    if (!pending)
        return;
    for (size_t k = 0; k < s->nstudies; k++) {
        rf_study *st = &s->studies[k];
        for (size_t m = 0; m < sizeof MODALITY_RULES / sizeof *MODALITY_RULES; m++) {
            const struct modality_rule *r = &MODALITY_RULES[m];
            if (r->strategy == BY_VIEW)
                select_by_view(s, st, r, r->modality, pending);
            else
                select_by_series(s, st, r, r->modality, pending);
        }
    }
    /* an instance whose series' Modality differs from its own: decided above by
     * its own Modality only when its series has it; otherwise say so */
    for (size_t i = 0; i < s->ninst; i++)
        if (pending[i])
            say(s->inst[i].reason, sizeof s->inst[i].reason,
                     "Modality %s differs from its series' (%s): not chosen", s->inst[i].attrs.modality,
                     s->series[s->inst[i].series].modality);
    free(pending);
}
