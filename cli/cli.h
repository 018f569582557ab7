/*
 * The radfuse command: one function per subcommand, each returning the
 * process exit status (0 success, 2 bad input or usage: the message names the
 * file and the problem, on one line of standard error).
 */
#ifndef RADFUSE_CLI_H
#define RADFUSE_CLI_H

#include "radfuse/runtime.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 2

int cli_model(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_dicom(int argc, char **argv);
int cli_dicom_ls(int argc, char **argv); /* cli/cmd_dicom_ls.c */
int cli_dicom_export(int argc, char **argv); /* cli/cmd_dicom_export.c; exit 1 on usage errors */
int cli_text(int argc, char **argv);
int cli_read(int argc, char **argv); /* cli/cmd_read.c; exit 1 on usage errors */
int cli_batch(int argc, char **argv); /* cli/cmd_batch.c; exit 1 on usage errors */
/* radfuse text extract / text eval (cmd_text_extract.c), dispatched by cli_text. */
int cli_text_extract(int argc, char **argv);
int cli_text_eval(int argc, char **argv);
int cli_text_labs(int argc, char **argv); /* cli/cmd_text_labs.c */
int cli_dataset(int argc, char **argv);   /* cli/cmd_dataset.c */
int cli_eval(int argc, char **argv);      /* cli/cmd_eval.c; exit 1 on usage errors */

/* Prints "radfuse: <message>" to stderr and returns CLI_EXIT_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses a positive integer option value; returns 0 and sets *out on success. */
int cli_parse_int(const char *flag, const char *value, long lo, long hi, long *out);

/* Usage errors of subcommands that exit 1 on them (cli/args.c). */
#define CLI_EXIT_USAGE 1
typedef struct cli_cmd {
    const char *name;  /* "read", "dicom export" */
    const char *usage; /* the usage text, ending in a newline */
} cli_cmd;
/* Prints "radfuse: NAME: " and fmt with arg, then the usage text, to stderr;
 * returns CLI_EXIT_USAGE. */
int cli_usage(const cli_cmd *c, const char *fmt, const char *arg);
/* The value of option argv[*i]: argv[*i + 1] (*i moves to it), or NULL after
 * a usage error ("FLAG needs a value") with *rc set to CLI_EXIT_USAGE. */
const char *cli_value(const cli_cmd *c, int argc, char **argv, int *i, int *rc);

/* Writes a checkpoint directory (config.json + model.safetensors) with random
 * weights of real shapes, deterministic in seed: a timm
 * vit_<size>_patch<P>_<IMG>, or bert_base (Hugging Face BertModel names). */
int cli_write_random_model(const char *arch, const char *dir, unsigned long seed, rf_err *err);

/* Creates the backend for --device (NULL: "cpu") with threads (0: all cores). */
int cli_backend(rf_backend **be, const char *device, long threads);

#endif
