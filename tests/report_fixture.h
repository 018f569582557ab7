/* A realistic study read for the writers' tests (tests/test_report_*.c):
 * three findings, two images (one used with a map per finding, one skipped),
 * one note with evidence spans (and a multi-byte character), labs, timings
 * and warnings. The patient fields are filled whatever include_phi says,
 * so that the tests see the writers leave them out on their own. */
#ifndef RADFUSE_TESTS_REPORT_FIXTURE_H
#define RADFUSE_TESTS_REPORT_FIXTURE_H

#include "radfuse/result.h"

#define FIX_PATIENT_NAME "DOE^JANE"
#define FIX_PATIENT_ID "PID7731942"
#define FIX_ACCESSION "ACC99812"
#define FIX_BIRTH_DATE "19580214"
#define FIX_STUDY_UID "1.2.826.0.1.3680043.8.498.10015"
/* the image paths hold the patient's name and ID in a folder name */
#define FIX_IMAGE_DIR "/data/studies/" FIX_PATIENT_ID "_DOE_JANE/"

/* The note; its spans are found in it by text, so offsets stay right. */
extern const char fix_note_text[];

/* Fills r (zeroed first) with images of rows x cols; free with rf_result_free. */
void fixture_build(rf_read_result *r, int include_phi, int rows, int cols);

/* A copy of s (aborts when out of memory). */
char *fix_strdup(const char *s);

#endif
