/* radfuse dicom: the subcommands (ls in cli/cmd_dicom_ls.c, export in cli/cmd_dicom_export.c). */
#include <string.h>

#include "cli/cli.h"

int cli_dicom(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "ls") == 0)
        return cli_dicom_ls(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "export") == 0)
        return cli_dicom_export(argc - 1, argv + 1);
    return cli_fail("dicom: unknown subcommand '%s' (radfuse dicom ls PATH... [--json]; "
                    "radfuse dicom export PATH... --out DIR)", argc ? argv[0] : "");
}
