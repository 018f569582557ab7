/* radfuse dataset study --data DIR --row N|--image FILE --out OUT: one row of
 * the COVID-19 image data collection as a DICOM study with its note, labs and
 * attribution (radfuse/datasets.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "radfuse/datasets.h"

static const char usage[] =
    "usage: radfuse dataset study --data DIR (--row N | --image FILE) --out OUT\n"
    "  DIR holds metadata.csv and images/ (the COVID-19 image data collection);\n"
    "  N is the 0-based data row, FILE an image's file name (the 'filename' column).\n"
    "  Writes OUT/study/<row>.dcm, OUT/note.txt and OUT/labs.csv when the row has\n"
    "  them, and OUT/ATTRIBUTION.txt (the row's license and source).\n";

static int cmd_study(int argc, char **argv)
{
    const char *data = NULL, *image = NULL, *out = NULL;
    long row = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--data") && v)
            data = v, i++;
        else if (!strcmp(a, "--image") && v)
            image = v, i++;
        else if (!strcmp(a, "--out") && v)
            out = v, i++;
        else if (!strcmp(a, "--row")) {
            if (cli_parse_int("--row", v, 0, 100000000, &row))
                return CLI_EXIT_FAIL;
            i++;
        } else if (!strcmp(a, "--help")) {
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        } else
            return cli_fail("dataset study: unknown or incomplete option '%s' (see radfuse dataset study --help)", a);
    }
    if (!data || !out || (row < 0) == !image)
        return cli_fail("dataset study: --data DIR, --out OUT and one of --row N or --image FILE are needed");
    rf_dataset_study_info info;
    rf_err err;
    if (rf_dataset_study(data, row, image, out, &info, &err))
        return cli_fail("%s", err.msg);
    printf("row %ld\n", info.row);
    printf("study: %s/%s (%s, %s, %dx%d, study date %s)\n", out, info.dicom, info.modality,
           info.view[0] ? info.view : "view unknown", info.cols, info.rows, info.study_date);
    if (info.has_note)
        printf("note: %s/note.txt\n", out);
    else
        printf("note: none (the row has no clinical note)\n");
    if (info.nlabs)
        printf("labs: %s/labs.csv (%d results)\n", out, info.nlabs);
    else
        printf("labs: none (the row has no usable lab values)\n");
    if (info.skipped[0])
        printf("labs left out: %s\n", info.skipped);
    printf("attribution: %s/ATTRIBUTION.txt\n", out);
    return CLI_EXIT_OK;
}

int cli_dataset(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help")) {
        fputs(usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "study"))
        return cmd_study(argc - 1, argv + 1);
    return cli_fail("dataset: unknown subcommand '%s' (study)", argv[0]);
}
