/* radfuse: entry point, global options and subcommand dispatch. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: radfuse <command> [options]\n"
    "\n"
    "Reads imaging studies with clinical notes and labs and runs vision, text and\n"
    "fusion transformers over them.\n"
    "\n"
    "commands:\n"
    "  model info DIR [--json]\n"
    "      Architecture, sizes, parameter count, dtypes and the SHA-256 of the\n"
    "      weight files of a checkpoint directory (config.json + safetensors).\n"
    "      For a model directory (docs/model-dir.md): its encoders, the fusion\n"
    "      config, the labels with thresholds and temperatures, every file with\n"
    "      its SHA-256, the model's hash and the model card's first lines.\n"
    "  model run DIR --input IN.safetensors --output OUT.safetensors\n"
    "            [--device D] [--threads N] [--precision fp32|fp16]\n"
    "      Runs the encoder on the tensors of IN named pixel_values (and\n"
    "      pixel_values_b) or input_ids / attention_mask / token_type_ids, and\n"
    "      writes last_hidden_state, pooler_output (timm: features, logits) and\n"
    "      last_hidden_state_b to OUT. Architectures: Hugging Face Dinov2Model,\n"
    "      ViTModel, BertModel; timm vit_*. --precision fp16 stores the weights\n"
    "      of linear layers in fp16 and accumulates in fp32 (Vulkan devices with\n"
    "      shaderFloat16 and 16-bit storage; elsewhere an error); default fp32.\n"
    "  model random --arch ARCH --out DIR [--seed S]\n"
    "      Writes a checkpoint with random weights of real shapes, for demos and\n"
    "      benchmarks: ARCH is a timm vit_<size>_patch<P>_<IMG> (size: tiny,\n"
    "      small, base, large) or bert_base (Hugging Face BertModel). ARCH\n"
    "      fusion_tiny or fusion_tiny_cross writes a small model directory\n"
    "      [--vocab FILE: with a text encoder] [--inline] [--timm].\n"
    "  dicom ls PATH... [--json]\n"
    "      DICOM files, directory trees (walked recursively), DICOMDIRs (the\n"
    "      files they reference) and .zip exports: a report per study (series,\n"
    "      instances in order, the images chosen for a model marked '*', a\n"
    "      reason for every choice and skip), or with --json one object per\n"
    "      file per line in name order (UIDs, modality, view, transfer syntax,\n"
    "      size, frames, photometric, bits, pixel_sha256 of the decoded stored\n"
    "      values, selected, reason). No patient names or IDs are printed.\n"
    "      Exit status 2 when any file fails; every file is still listed.\n"
    "  dicom export PATH... --out DIR [--png|--jpeg] [--16bit]\n"
    "               [--window auto|file|C,W] [--quality N] [-v]\n"
    "      Every frame rendered (Modality LUT, window or VOI LUT, MONOCHROME1,\n"
    "      palettes, RGB) to DIR/<SOPInstanceUID>[_<frame>].png (8-bit, or 16-bit\n"
    "      with --16bit) or .jpg (8-bit, quality 90). --window: the file's first\n"
    "      window, else its VOI LUT, else auto (default 'file'); 'auto' (0.5th to\n"
    "      99.5th percentile); or center,width. Written paths on stdout. Exit\n"
    "      status 2 when any input fails (the others are written), 1 on usage.\n"
    "  text tokenize --vocab FILE [--max-length N] [--json]\n"
    "      Tokenizes all of standard input (UTF-8) with BERT's WordPiece, as\n"
    "      transformers' BertTokenizer (uncased) does, [CLS] ... [SEP], at most N\n"
    "      tokens (default 512). Prints id, token and the span of the input\n"
    "      (code points) per line; --json prints {input_ids, tokens, offsets}.\n"
    "  text extract NOTE... [--json] [--rules DIR]\n"
    "      Sections, sentences and finding mentions of clinical notes (files, or -\n"
    "      for standard input; UTF-8): each mention with its finding, status\n"
    "      (present, absent, uncertain), section, span (code points) and the\n"
    "      trigger that set the status; --json adds byte spans, sentences and\n"
    "      report-level labels. Rules are built in (data/text/*.tsv); --rules DIR\n"
    "      replaces any of them with DIR's files of the same names (docs/text.md).\n"
    "  text eval REPORTS.csv [--json] [--split all|dev|heldout] [--labels FILE]\n"
    "            [--uncertain negative|positive] [--min-support N] [--rules DIR]\n"
    "      Scores extraction on reports in the Indiana University layout (uid,\n"
    "      MeSH, findings, impression) against their MeSH codes, or against a\n"
    "      label file (filename CXR<uid>, 0/1 columns): precision, recall, F1 and\n"
    "      support per finding and macro-F1 over findings with >= N (50) positive\n"
    "      reports. dev is even uid, heldout odd uid.\n"
    "  text labs FILE... [--json]\n"
    "      Lab results from CSV (header code,name,value,unit,low,high,time),\n"
    "      FHIR R4 JSON (Bundle or resource: Observation, DocumentReference,\n"
    "      DiagnosticReport) or HL7 v2 ORU^R01, told apart by content: one line\n"
    "      per lab with its lab id, value in the lab's canonical unit (and the\n"
    "      conversion), reference range, z-like value and flags; notes found in\n"
    "      FHIR or HL7 as one line each; skipped resources as warnings. --json:\n"
    "      one object per record per line (type lab, note or issue).\n"
    "  read STUDY... [--notes FILE]... [--labs FILE]... [--fhir FILE]...\n"
    "       [--prior STUDY]... [--study UID] [--model DIR] [--out DIR] [--device D]\n"
    "       [--saliency gradcam|rollout|occlusion|none] [--json] [--include-phi]\n"
    "       [--no-dicom] [--colormap viridis|inferno] [--alpha A] [--precision P]\n"
    "      A study-level read: the study's images (files, trees, DICOMDIR, zip),\n"
    "      notes and labs (CSV, HL7 v2, FHIR) through a fusion model (--model,\n"
    "      or RADFUSE_MODEL): findings by probability with threshold, call and\n"
    "      the inputs that drove each. With --out DIR: result.json\n"
    "      (docs/result-schema.md), overlays/, report.html, report.fhir.json and\n"
    "      dicom/ (Secondary Captures and a Comprehensive SR; they copy the\n"
    "      study's patient module). No patient names or IDs elsewhere unless\n"
    "      --include-phi. --json prints result.json. docs/read.md has the rest.\n"
    "  batch ROOT --out DIR [--model DIR] [--manifest FILE] [--jobs N]\n"
    "        [--device D] [--shard I/N] [--retry-failed] [--saliency M] [--dry-run]\n"
    "      Every study of an export (trees, DICOMDIRs, zip files) through the\n"
    "      read, with notes and labs paired by a manifest or by folder: a\n"
    "      pipeline of decoding workers, one device stage and a writer;\n"
    "      DIR/results.jsonl (one result per study), DIR/studies/<key>/,\n"
    "      DIR/errors.jsonl; resumes after a kill (DIR/state.sqlite). Exit 0\n"
    "      only when every study succeeded. batch merge OUT DIR... combines\n"
    "      shard outputs. docs/batch.md.\n"
    "  dataset study --data DIR (--row N | --image FILE) --out OUT\n"
    "      One row of the COVID-19 image data collection (metadata.csv and\n"
    "      images/) as a study: OUT/study/<row>.dcm (CR, the JPEG's values),\n"
    "      note.txt and labs.csv when the row has them, ATTRIBUTION.txt.\n"
    "  dataset ls DIR [--layout NAME] [--split FILE|source|hash] [--json]\n"
    "      Layout (covid-chestxray, chexpert, mimic-cxr-jpg, nih-cxr14; detected),\n"
    "      rows, patients and each target's positives/negatives/unknowns, per side\n"
    "      of a split (docs/datasets.md).\n"
    "  dataset split --data DIR --out FILE [--layout NAME] [--key K]\n"
    "       [--train F --val F --test F] [--stratify | --no-stratify]\n"
    "      A patient-level split file (patientid,split) by a keyed hash of each\n"
    "      patient key; datasets/splits/covid-chestxray.csv is the fixed one.\n"
    "  eval DATASET --model DIR [--json] [--split FILE] [--subset val|test|train|all]\n"
    "       [--limit N] [--layout NAME] [--device D] [--bootstrap N] [--seed S]\n"
    "       [--mask-findings] [--predictions FILE]\n"
    "      A model against a labelled dataset (covid-chestxray, CheXpert,\n"
    "      MIMIC-CXR-JPG, NIH ChestX-ray14 layouts): per target AUROC with a\n"
    "      patient bootstrap interval, AUPRC, ECE and reliability table,\n"
    "      sensitivity/specificity at the stored threshold, and AUROC with\n"
    "      image, text or labs alone (the ablation); --mask-findings also reads\n"
    "      the notes with the findings' names masked. docs/eval.md.\n"
    "  demo [--dir DIR] [--batch N] [--threads N]\n"
    "      Builds a ViT-B/16 with random weights, runs it on a synthetic\n"
    "      224x224 image and prints the output summary and the time taken.\n"
    "\n"
    "options:\n"
    "  --help       this text\n"
    "  --version    the version\n"
    "\n"
    "Devices (--device, or RADFUSE_DEVICE): cpu; vulkan (the best Vulkan device);\n"
    "vulkan:N; auto (default: a Vulkan GPU if there is one, else the CPU). Where\n"
    "Vulkan is asked for and cannot run, radfuse warns once and uses the CPU.\n"
    "RADFUSE_PROFILE=1 prints per-kernel GPU times; RADFUSE_VK_VALIDATION=1 runs\n"
    "the Khronos validation layer and fails on any message.\n"
    "Exit status: 0 on success, 2 on bad input or usage (one line on stderr).\n";

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("radfuse: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

int cli_parse_int(const char *flag, const char *value, long lo, long hi, long *out)
{
    if (!value)
        return cli_fail("%s needs a value", flag);
    char *end;
    long v = strtol(value, &end, 10);
    if (!*value || *end || v < lo || v > hi)
        return cli_fail("%s must be an integer in [%ld, %ld], got '%s'", flag, lo, hi, value);
    *out = v;
    return 0;
}

int cli_backend(rf_backend **be, const char *device, long threads)
{
    if (!device)
        device = getenv("RADFUSE_DEVICE");
    if (!device || !*device)
        device = "auto";
    rf_err err;
    if (rf_backend_create(be, device, (int)threads, &err))
        return cli_fail("%s", err.msg);
    if (rf_backend_warning(*be))
        fprintf(stderr, "radfuse: warning: %s\n", rf_backend_warning(*be));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return CLI_EXIT_FAIL;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("radfuse %s\n", RADFUSE_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "model") == 0)
        return cli_model(argc - 2, argv + 2);
    if (strcmp(cmd, "dicom") == 0)
        return cli_dicom(argc - 2, argv + 2);
    if (strcmp(cmd, "text") == 0)
        return cli_text(argc - 2, argv + 2);
    if (strcmp(cmd, "dataset") == 0)
        return cli_dataset(argc - 2, argv + 2);
    if (strcmp(cmd, "demo") == 0)
        return cli_demo(argc - 2, argv + 2);
    if (strcmp(cmd, "read") == 0)
        return cli_read(argc - 2, argv + 2);
    if (strcmp(cmd, "batch") == 0)
        return cli_batch(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0)
        return cli_eval(argc - 2, argv + 2);
    return cli_fail("unknown command '%s' (see radfuse --help)", cmd);
}
