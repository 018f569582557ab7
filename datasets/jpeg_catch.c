/* libjpeg's errors as a message and a longjmp: see datasets_internal.h. */
#include <setjmp.h>
#include <stdio.h>

#include <jpeglib.h>

#include "datasets/datasets_internal.h"

static void on_jpeg_error(j_common_ptr cinfo)
{
    ds_jpeg_fail *f = (ds_jpeg_fail *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, f->msg);
    longjmp(f->jb, 1);
}

static void on_jpeg_message(j_common_ptr cinfo, int level) { (void)cinfo, (void)level; }

void ds_jpeg_catch(struct jpeg_decompress_struct *cinfo, ds_jpeg_fail *f)
{
    cinfo->err = jpeg_std_error(&f->mgr);
    f->mgr.error_exit = on_jpeg_error;
    f->mgr.emit_message = on_jpeg_message;
}
