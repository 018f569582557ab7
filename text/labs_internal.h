/* What the lab readers (labs*.c, lab_units.c) share; not part of the public API. */
#ifndef RADFUSE_LABS_INTERNAL_H
#define RADFUSE_LABS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "radfuse/labs.h"

/* ---- strings and records ------------------------------------------------- */

/* malloc'd copies; NULL when s is NULL or out of memory (callers check with *oom). */
char *labs_strndup(const char *s, size_t n);
char *labs_strdup(const char *s);
/* malloc'd printf; NULL when out of memory. */
char *labs_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growing NUL-terminated string (start zeroed; free(b.s) when done). */
typedef struct labs_buf {
    char *s;
    size_t len, cap;
} labs_buf;
/* Appends sep (unless b is empty) then n bytes of s; -1 when out of memory. */
int labs_buf_add(labs_buf *b, const char *sep, const char *s, size_t n);

/* A new zeroed record at the end of L (lab = -1); RF_ENOMEM or past the
 * per-file record cap (counted from base, the totals when the file began). */
typedef struct labs_base {
    size_t nlabs, nnotes, nissues;
} labs_base;
int labs_new_lab(rf_labs *L, const labs_base *base, rf_lab **out, rf_err *err);
int labs_new_note(rf_labs *L, const labs_base *base, rf_note **out, rf_err *err);
/* Appends an issue (message printf-style; never a value). */
int labs_issue(rf_labs *L, const labs_base *base, rf_err *err, const char *source, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Strings that must exist for the record to be useful; returns RF_ENOMEM when
 * an allocation that was asked for failed (dup of non-NULL gave NULL). */
int labs_set_str(char **dst, const char *s, size_t n, rf_err *err);

/* ---- values --------------------------------------------------------------- */

/* Whole s[0..len) (spaces around allowed) as a finite decimal number:
 * [+-]digits[.digits][e[+-]digits]; no hex, inf, nan, thousands separators
 * or decimal commas. */
bool labs_parse_number(const char *s, size_t len, double *out);
/* Sets value_raw from raw (len bytes) and parses it: a number, a comparator
 * and a number ("<0.1", ">= 5", "≤3"), else RF_LAB_TEXT_VALUE (empty:
 * RF_LAB_NO_VALUE). */
int labs_set_value(rf_lab *r, const char *raw, size_t len, rf_err *err);
/* Parses r->range_raw ("3.5-5.0", "3.5 - 5", "-2 - 2", "<5", "<=5", ">10",
 * "3.5 to 5") into low/high; otherwise sets RF_LAB_RANGE_UNPARSED. */
void labs_parse_range(rf_lab *r);
/* True for "NNNN-C" with a valid LOINC mod 10 check digit. */
bool labs_loinc_check(const char *code);
/* LOINC-shaped ("digits-digit"), whatever its check digit. */
bool labs_loinc_shape(const char *code);

/*
 * Everything radfuse derives from what a reader stored: LOINC from code and
 * system, the lab's id (by LOINC, else by name), the normalized value and
 * range, flags (from the range, the comparator and source_flags) and z.
 * Readers fill source, code, system, name, value (labs_set_value), unit_raw,
 * range (has_low/low, has_high/high, range_unit, or range_raw), source_flags,
 * status and time, then call this once. RF_ENOMEM is the only failure.
 */
int labs_finish(rf_lab *r);

/* ---- units (lab_units.c) --------------------------------------------------- */

typedef enum labs_conv {
    LABS_CONV_OK = 0,
    LABS_CONV_UNKNOWN_UNIT,   /* not a unit radfuse knows */
    LABS_CONV_UNCONVERTIBLE,  /* known, but not to this lab's unit */
    LABS_CONV_MISSING_UNIT,   /* no unit where the lab needs one */
} labs_conv;

/* factor and offset from unit (NULL or "" for none) to lab id's canonical
 * unit; molar_mass 0 means the lab's own. *used_mm gets the molar mass used
 * (0 when none was). */
labs_conv labs_unit_conversion(int id, const char *unit, double molar_mass, double *factor, double *offset,
                               double *used_mm);
/* True when unit is one radfuse knows (any lab). */
bool labs_unit_known(const char *unit);

/* The lab for a LOINC code and the molar mass its basis implies (0: the lab's). */
int labs_lab_by_loinc(const char *code, double *molar_mass);
/* Code i of the LOINC table and its lab, or NULL past the end (for tests). */
const char *labs_loinc_at(size_t i, int *lab);
/* The lab for a display name (case, '-', '_' and spacing ignored; exact
 * synonyms only), with the unit deciding between twins (neutrophils in % or
 * as a count; D-dimer FEU/DDU). -1 when none. */
int labs_lab_by_name(const char *name, const char *unit, double *molar_mass);
/* Whether the lab's quantity cannot be negative (a one-sided "<5" range then
 * starts at 0), and whether it takes no unit ("" is its unit: pH, INR). */
bool labs_lab_nonneg(int id);
bool labs_lab_unitless(int id);

/* ---- readers ----------------------------------------------------------------- */

int labs_read_csv(const char *name, const char *data, size_t len, rf_labs *L, const labs_base *base, rf_err *err);
int labs_read_fhir(const char *name, const char *data, size_t len, rf_labs *L, const labs_base *base, rf_err *err);
int labs_read_hl7(const char *name, const char *data, size_t len, rf_labs *L, const labs_base *base, rf_err *err);

/* Base64 (RFC 4648, whitespace between groups allowed) into a malloc'd buffer
 * with a NUL after it; -1 on bad input or when it would exceed max bytes,
 * -2 when out of memory. */
int labs_base64_decode(const char *s, size_t len, size_t max, char **out, size_t *outlen);

#endif
