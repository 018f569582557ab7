/*
 * radfuse labs: lab results and clinical documents as inputs.
 *
 * Reads labs from CSV (code,name,value,unit,low,high,time with a header),
 * FHIR R4 JSON (a Bundle or one resource: Observation, DocumentReference,
 * DiagnosticReport) and HL7 v2 ORU^R01 messages, and plain-text notes and
 * reports. Every lab becomes one record that keeps what the source said (raw
 * value, unit, range, flags, time) next to what radfuse made of it: the lab's
 * id in a fixed table of common labs (stable ids: the table only grows at the
 * end), the value in the lab's canonical unit, the reference range in that
 * unit, a z-like value and flags. Those records are what lab tokens (code
 * embedding + value embedding) are made from.
 *
 * Nothing is guessed: a unit radfuse does not know, a unit that cannot be
 * converted to the lab's canonical unit, a text value ("pending", "<0.1"), a
 * missing range all stay in the record, flagged. A resource or message that
 * is not a lab or document becomes an issue (a note naming where it was) and
 * reading goes on. Input that cannot be read at all (invalid UTF-8, NUL,
 * broken delimiters, JSON nested too deep, over the size caps) is an error
 * naming the file and the line, segment or byte.
 *
 * Conventions as in runtime.h: fallible functions return 0 or an RF_E* code
 * and fill rf_err with one line; nothing here keeps global state. No value
 * ever appears in an error or issue message, only where it was.
 */
#ifndef RADFUSE_LABS_H
#define RADFUSE_LABS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- caps --------------------------------------------------------------- */

#define RF_LABS_FILE_MAX ((size_t)64 << 20) /* one lab file (CSV, FHIR JSON, HL7) */
#define RF_NOTE_MAX ((size_t)4 << 20)       /* one note or report, as text (after base64) */
#define RF_LABS_RECORDS_MAX 1000000         /* labs + notes + issues from one file */
#define RF_LABS_JSON_DEPTH 64               /* nesting of FHIR JSON (FHIR needs < 20) */
#define RF_LABS_JSON_VALUES 4000000         /* JSON values in one file: bounds cJSON's memory (~64 bytes each) */

/* ---- times -------------------------------------------------------------- */

/* How much of a time the source gave. */
typedef enum rf_time_precision {
    RF_TIME_NONE = 0,
    RF_TIME_YEAR,
    RF_TIME_MONTH,
    RF_TIME_DAY,
    RF_TIME_HOUR, /* HL7 only: YYYYMMDDHH */
    RF_TIME_MINUTE,
    RF_TIME_SECOND,
} rf_time_precision;

/* A date or date-time as the source wrote it; fields past precision are 0. */
typedef struct rf_time {
    rf_time_precision precision;
    int year, month, day, hour, minute, second;
    int32_t nanos;   /* fraction of the second */
    int frac_digits; /* digits of the fraction as written (0..9) */
    bool has_tz;     /* a zone was given ("Z" or an offset) */
    int tz_minutes;  /* offset east of UTC */
} rf_time;

/*
 * ISO 8601 / FHIR dateTime: YYYY, YYYY-MM, YYYY-MM-DD, or
 * YYYY-MM-DDThh:mm[:ss[.f...]][Z|+hh:mm|-hh:mm] ('T' or one space). Calendar
 * checked (leap years, 24:00 refused, second 60 allowed). RF_EFORMAT when not.
 */
int rf_time_parse_iso(const char *s, size_t len, rf_time *out);
/* HL7 v2 DTM/TS: YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]. RF_EFORMAT when not. */
int rf_time_parse_hl7(const char *s, size_t len, rf_time *out);
/* ISO 8601 text of t at its own precision, zone as given ("" for NONE);
 * returns the length (buf of 40 bytes always suffices). */
size_t rf_time_format(const rf_time *t, char *buf, size_t cap);
/* Seconds since 1970-01-01T00:00:00Z, the unset fields taken as their first
 * value; a time without a zone is taken as UTC and *zoned is false. */
int64_t rf_time_unix(const rf_time *t, bool *zoned);

/* ---- the lab table ------------------------------------------------------ */

/* One lab of the fixed table. */
typedef struct rf_lab_def {
    const char *key;  /* stable identifier, e.g. "glucose", "wbc", "neutrophils_pct" */
    const char *name; /* readable name */
    const char *unit; /* canonical unit (UCUM), e.g. "mmol/L", "10*9/L", "%", "Cel" */
    double pop_low, pop_high; /* typical adult reference interval in the canonical unit */
} rf_lab_def;

/* Number of labs in the table; ids are 0 .. count-1 and never change (the table only grows). */
int rf_lab_count(void);
/* The lab with that id, or NULL. */
const rf_lab_def *rf_lab_def_get(int id);
/* The id of a lab by key, or -1. */
int rf_lab_by_key(const char *key);
/* The lab a LOINC code (e.g. "2345-7") measures, or -1 when not in the table. */
int rf_lab_by_loinc(const char *code);

/*
 * Converts value in unit (as the source wrote it: UCUM or a common spelling
 * such as "mg/dl", "K/uL", "x10^9/L", "mEq/L", "degF") to the canonical unit
 * of lab id; molar_mass (g/mol, > 0) overrides the lab's own for mass <->
 * amount conversions (e.g. 28.0134 for urea nitrogen), 0 keeps the lab's.
 * *factor and *offset (either may be NULL) get out = value * factor + offset.
 * RF_EUNSUP with a reason when the unit is unknown or cannot be converted
 * to the lab's unit (a dimension mismatch, or mass <-> amount without a
 * molar mass); the message names the unit, never the value.
 */
int rf_lab_convert(int id, double value, const char *unit, double molar_mass, double *out, double *factor,
                   double *offset, rf_err *err);

/* ---- records ------------------------------------------------------------ */

typedef enum rf_lab_cmp {
    RF_CMP_NONE = 0, /* an exact value */
    RF_CMP_LT,       /* "<0.1": below the value */
    RF_CMP_LE,
    RF_CMP_GT,
    RF_CMP_GE,
} rf_lab_cmp;

/* What radfuse found about a record (bits of rf_lab.flags). */
enum {
    RF_LAB_LOW = 1u << 0,               /* below the range (the record's, else the table's) */
    RF_LAB_HIGH = 1u << 1,              /* above it */
    RF_LAB_CRITICAL = 1u << 2,          /* the source flagged it critical (LL, HH, AA) */
    RF_LAB_ABNORMAL = 1u << 3,          /* the source flagged it abnormal, or LOW/HIGH */
    RF_LAB_UNKNOWN_LAB = 1u << 4,       /* code and name match no lab of the table */
    RF_LAB_BY_NAME = 1u << 5,           /* lab identified by its name, not by a LOINC code */
    RF_LAB_UNKNOWN_UNIT = 1u << 6,      /* the unit is not one radfuse knows: kept as written */
    RF_LAB_UNIT_UNCONVERTIBLE = 1u << 7, /* a known unit that cannot become the lab's unit */
    RF_LAB_MISSING_UNIT = 1u << 8,      /* a number without a unit where the lab has one */
    RF_LAB_TEXT_VALUE = 1u << 9,        /* the value is not a number ("pending", "see note") */
    RF_LAB_NO_VALUE = 1u << 10,         /* no value at all */
    RF_LAB_CENSORED = 1u << 11,         /* a comparator ("<0.1"): value is the bound */
    RF_LAB_MISSING_RANGE = 1u << 12,    /* the source gave no reference range */
    RF_LAB_RANGE_UNPARSED = 1u << 13,   /* a range was given but is not numeric: kept as text */
    RF_LAB_BAD_TIME = 1u << 14,         /* a time was given but is not a valid date/time */
    RF_LAB_BAD_CODE = 1u << 15,         /* a LOINC-shaped code whose check digit is wrong */
    RF_LAB_FLAG_CONFLICT = 1u << 16,    /* the source's H/L disagrees with the range */
    RF_LAB_REPEATED = 1u << 17,         /* several values given (HL7 repetitions): the first is used */
};
#define RF_LAB_FLAG_BITS 18
/* Name of one flag bit ("low", "unknown-unit", ...), or NULL. */
const char *rf_lab_flag_name(uint32_t bit);

/* Where the z-like value's range came from. */
typedef enum rf_lab_zsrc {
    RF_Z_NONE = 0,    /* no number or no range: z is 0 and meaningless */
    RF_Z_RECORD,      /* the record's own reference range */
    RF_Z_POPULATION,  /* the table's typical adult interval (the record gave none) */
} rf_lab_zsrc;

/*
 * One lab result. Strings are NUL-terminated UTF-8 owned by the rf_labs that
 * holds the record; NULL when the source had none.
 */
typedef struct rf_lab {
    char *source;      /* "file.csv:12", "file.json: entry[3].resource.component[1]", "file.hl7: segment 7 (OBX)" */
    char *code;        /* the code as given (any system) */
    char *system;      /* its system ("http://loinc.org", "LN", ...) */
    char *loinc;       /* the LOINC code when the code is one (check digit valid) */
    char *name;        /* display name as given */
    char *value_raw;   /* the value as written */
    char *unit_raw;    /* the unit as written */
    char *range_raw;   /* a reference range given as text (HL7 OBX-7, FHIR referenceRange.text) */
    char *source_flags; /* abnormal flags as given (HL7 OBX-8, FHIR interpretation codes) */
    char *status;      /* result status as given (HL7 OBX-11, FHIR status) */
    char *time_raw;    /* the time as written */
    rf_time time;      /* parsed; precision NONE when absent or bad (see RF_LAB_BAD_TIME) */

    int lab;           /* id in the lab table, or -1 */
    bool has_value;    /* value parsed as a number (possibly with a comparator) */
    double value;      /* in unit_raw */
    rf_lab_cmp cmp;
    bool has_low, has_high; /* reference range bounds, in unit_raw (or range_unit) */
    double low, high;
    char *range_unit;  /* unit of low/high when the source gave one different from unit_raw */

    /* normalized, in rf_lab_def_get(lab)->unit */
    const char *unit;  /* canonical unit when unit_raw converts to it (factor, offset valid), else NULL */
    bool has_norm;     /* value_norm holds the value in it (a number was given and unit is set) */
    double value_norm;
    double factor, offset; /* value_norm = value * factor + offset */
    double molar_mass;     /* g/mol used for a mass <-> amount conversion, else 0 */
    bool has_norm_low, has_norm_high;
    double low_norm, high_norm;

    double z;          /* (value - mid) / half-width of the range in z_source; see docs/text.md */
    rf_lab_zsrc z_source;
    uint32_t flags;    /* RF_LAB_* */
} rf_lab;

/* A note or report for the text encoder. */
typedef struct rf_note {
    char *source;   /* "note.txt", "file.json: entry[2].resource.content[0]" */
    char *kind;     /* "note", "report", "DocumentReference", "DiagnosticReport", "OBX" */
    char *title;    /* a type or title when the source gave one */
    char *time_raw;
    rf_time time;
    uint32_t flags; /* RF_LAB_BAD_TIME when a date was given but invalid */
    char *text;     /* valid UTF-8 without NUL, at most RF_NOTE_MAX bytes */
    size_t len;
} rf_note;

/* Something skipped, with where it was (never a value). */
typedef struct rf_labs_issue {
    char *source;
    char *message;
} rf_labs_issue;

/* Records from one or more files; zero-initialize before the first read. */
typedef struct rf_labs {
    rf_lab *labs;
    size_t nlabs;
    rf_note *notes;
    size_t nnotes;
    rf_labs_issue *issues;
    size_t nissues;
    size_t cap_labs, cap_notes, cap_issues; /* private */
} rf_labs;

typedef enum rf_labs_format {
    RF_LABS_AUTO = 0, /* by content: '{' FHIR JSON, "MSH" HL7 v2, else CSV with the header */
    RF_LABS_CSV,
    RF_LABS_FHIR,
    RF_LABS_HL7,
} rf_labs_format;

/*
 * Appends the labs, notes and issues of len bytes of data to out; name is
 * used as the source of every record. Fails (RF_EFORMAT, RF_ENOMEM) on input
 * that cannot be read, with one line naming name and the line, segment or
 * byte; then out is as it was before the call.
 *
 * CSV: a header naming the columns code, name, value, unit, low, high, time
 * (any order, case-insensitive; other columns are reported as ignored), one
 * lab per row. FHIR: Observation (value[x], referenceRange, interpretation,
 * effective[x], component[] as labs of their own), DocumentReference and
 * DiagnosticReport (conclusion, presentedForm) with inline text/plain as
 * notes; other resource types are issues. HL7: ORU^R01 messages, OBX
 * segments as labs (TX and FT values as notes), delimiters from MSH.
 */
int rf_labs_parse(const char *name, const char *data, size_t len, rf_labs_format fmt, rf_labs *out, rf_err *err);
/* rf_labs_parse of a whole file of at most RF_LABS_FILE_MAX bytes. */
int rf_labs_read_file(const char *path, rf_labs_format fmt, rf_labs *out, rf_err *err);
/* The format rf_labs_parse would read data as (never RF_LABS_AUTO). */
rf_labs_format rf_labs_detect(const char *data, size_t len);
/* "auto", "csv", "fhir" or "hl7". */
const char *rf_labs_format_name(rf_labs_format fmt);
/* Frees every record, note and issue, and leaves labs zeroed (ready for reuse). */
void rf_labs_free(rf_labs *labs);

/*
 * A plain-text note or report: valid UTF-8 without NUL, at most RF_NOTE_MAX
 * bytes. Date convention: when the first line (after a byte order mark) is
 * "Date: <ISO 8601 date or date-time>" ("date:" in any case, spaces around
 * the value allowed), that is the note's time and the line is not part of the
 * text; a "Date:" line that does not parse stays in the text and the note is
 * flagged RF_LAB_BAD_TIME. kind is "note" or "report" (any string is kept).
 * Appends one note to out.
 */
int rf_note_parse(const char *name, const char *data, size_t len, const char *kind, rf_labs *out, rf_err *err);
/* rf_note_parse of a whole file (more than RF_NOTE_MAX bytes: an error before reading). */
int rf_note_read_file(const char *path, const char *kind, rf_labs *out, rf_err *err);

/* ---- lab tokens: what the fusion model embeds ------------------------------ */

/*
 * One lab as a token for the fusion model: its embedding is the lab's row of
 * a code embedding table (lab) plus a linear map of features:
 *   [0] tanh(z / 2): the z-like value squashed (the reference range maps to
 *       about +-0.46, a CRP of 200 against 0-5 to 1), 0 without a value
 *   [1] 1: a numeric value was given
 *   [2] low, [3] high (RF_LAB_LOW / RF_LAB_HIGH), [4] critical
 *   [5] censored (a comparator: the value is a bound)
 *   [6] z from the population interval, not the record's own range
 *   [7] age of the result: log1p(days before the reference time) / log(366),
 *       clipped to [0, 1]; 1 when the result has no time, 0 when no
 *       reference time is given
 */
#define RF_LAB_TOKEN_FEATURES 8
typedef struct rf_lab_token {
    int32_t lab;                           /* id in the lab table: the code embedding's row */
    float features[RF_LAB_TOKEN_FEATURES]; /* the value embedding's input, as above */
    size_t record;                         /* the record of labs it came from (for evidence) */
} rf_lab_token;

/*
 * The tokens of labs: for every lab of the table, its latest numeric result
 * (a number in a unit that converts, or a censored bound) taken at or before
 * reference (NULL: no limit); results after the reference time are never
 * used, results without a time only when the lab has no dated one; ties go to
 * the later record. One token per lab, in lab-id order. Records of unknown
 * labs or without a usable number give no token. *out is malloc'd (NULL and
 * *n = 0 when there are none).
 */
int rf_lab_tokens(const rf_labs *labs, const rf_time *reference, rf_lab_token **out, size_t *n, rf_err *err);

#ifdef __cplusplus
}
#endif
#endif
