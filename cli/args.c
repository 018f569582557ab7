/*
 * The subcommands' usage errors and option values: one message format
 * ("radfuse: CMD: problem", then the usage text) and one exit status for
 * every subcommand that reports usage errors with status 1.
 */
#include <stdio.h>

#include "cli/cli.h"

int cli_usage(const cli_cmd *c, const char *fmt, const char *arg)
{
    fprintf(stderr, "radfuse: %s: ", c->name);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    fputs(c->usage, stderr);
    return CLI_EXIT_USAGE;
}

const char *cli_value(const cli_cmd *c, int argc, char **argv, int *i, int *rc)
{
    if (*i + 1 < argc)
        return argv[++*i];
    *rc = cli_usage(c, "%s needs a value", argv[*i]);
    return NULL;
}
