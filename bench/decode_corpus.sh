#!/usr/bin/env bash
# Makes the decode benchmark's corpus at run time (nothing generated is
# committed): COUNT real chest radiographs from shared/data/covid-chestxray,
# each in the transfer syntaxes operators meet, one directory per syntax:
#   real-jpeg-baseline/   the real JPEG as it is (8-bit, long side 1024 px), wrapped by img2dcm
#   explicit-le/          detector-sized 16-bit words, BitsStored 12, MONOCHROME2, uncompressed
#   jpeg-lossless-sv1/    the same pixels, dcmcjpeg (process 14, selection value 1)
#   jpeg-ls-lossless/     the same pixels, dcmcjpls
#   rle/                  the same pixels, dcmcrle
#   j2k-lossless/         the same pixels, opj_compress (OpenJPEG defaults: reversible 5/3,
#                         6 resolutions, 64x64 code blocks, one tile), wrapped by dump2dcm
#   jpeg-baseline-8bit/   an 8-bit rendering of the same size, dcmcjpeg +eb (quality 90)
# The shared radiographs are at most 1024 px, real CR/DX files 2000-3000 px with
# 12 stored bits, so bench/cxr_synth.c upsamples each to a long side of LONG px
# and adds quantum-like noise (see there); the result compresses as real
# acquisitions do (about 2.9:1 JPEG lossless, 3.4:1 JPEG-LS, 3.6:1 JPEG 2000, 1.9:1 RLE).
# JPEG 2000 is not made with gdcmconv --j2k: GDCM 3.0.21 writes 16-bit codestream
# precision for BitsStored 12, which radfuse refuses (docs/imaging.md, 693_J2KI.dcm).
#   bench/decode_corpus.sh OUTDIR [COUNT]      env: BUILD (for cxr_synth), LONG (3000)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/decode_corpus.sh OUTDIR [COUNT]}
count=${2:-24}
long=${LONG:-3000}
build=${BUILD:-build}
shared=${RADFUSE_SHARED:-$(cd .. && pwd)/shared}
src=$shared/data/covid-chestxray/images
[[ -d $src ]] || { echo "decode_corpus: $src not found (set RADFUSE_SHARED)" >&2; exit 1; }
for tool in img2dcm dcmj2pnm dump2dcm dcmcjpeg dcmcjpls dcmcrle opj_compress; do
  command -v $tool >/dev/null || { echo "decode_corpus: $tool missing: scripts/install-deps.sh --bench" >&2; exit 1; }
done
synth=$build/cxr_synth
[[ -x $synth ]] || cmake --build "$build" --target cxr_synth >/dev/null

stamp="count=$count long=$long synth=$(sha256sum bench/cxr_synth.c bench/decode_corpus.sh | sha256sum | cut -c1-16)"
if [[ -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]]; then
  exit 0
fi
rm -rf "$out"
syntaxes=(real-jpeg-baseline explicit-le jpeg-lossless-sv1 jpeg-ls-lossless rle j2k-lossless jpeg-baseline-8bit)
for s in "${syntaxes[@]}" tmp; do mkdir -p "$out/$s"; done

# The first COUNT baseline JPEGs (by name) whose long side is the set's largest, 1024 px:
# the SOF0 marker gives the size without decoding.
mapfile -t sources < <(python3 - "$src" "$count" <<'PY'
import os, struct, sys
d, n = sys.argv[1], int(sys.argv[2])
picked = []
for name in sorted(os.listdir(d)):
    b = open(os.path.join(d, name), 'rb').read()
    i = 2
    while i + 9 < len(b) and b[i] == 0xff:
        m, seglen = b[i + 1], struct.unpack('>H', b[i + 2:i + 4])[0]
        if m == 0xc0:
            h, w = struct.unpack('>HH', b[i + 5:i + 9])
            if max(w, h) == 1024 and b[i + 9] == 1:
                picked.append(os.path.join(d, name))
            break
        i += 2 + seglen
    if len(picked) == n:
        break
print('\n'.join(picked))
PY
)
[[ ${#sources[@]} -eq $count ]] || { echo "decode_corpus: only ${#sources[@]} sources of 1024 px" >&2; exit 1; }

# dump2dcm header of one synthetic image; UIDs under 2.25 (UUID-derived root) from the index
header() { # rows cols bits raw index
  local stored=$3 alloc=16 vr=OW
  [[ $3 == 8 ]] && alloc=8 vr=OB
  cat <<EOF
(0008,0016) UI [1.2.840.10008.5.1.4.1.1.1.1]
(0008,0018) UI [2.25.$((1000000 + $5))]
(0008,0060) CS [DX]
(0018,5101) CS [PA]
(0020,000d) UI [2.25.$((2000000 + $5))]
(0020,000e) UI [2.25.$((3000000 + $5))]
(0020,0013) IS [$5]
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US $1
(0028,0011) US $2
(0028,0100) US $alloc
(0028,0101) US $stored
(0028,0102) US $((stored - 1))
(0028,0103) US 0
(7fe0,0010) $vr =$4
EOF
}

make_one() { # index source
  set -euo pipefail
  local i=$1 jpg=$2 n t dims rows cols
  n=$(printf %03d "$i")
  t=$out/tmp/$n
  img2dcm -q "$jpg" "$out/real-jpeg-baseline/$n.dcm"
  dcmj2pnm -q +op "$out/real-jpeg-baseline/$n.dcm" "$t.pgm"
  dims=$("$synth" "$t.pgm" "$t.raw" --long "$long" --bits 12 --seed "$i")
  read -r rows cols <<<"$dims"
  header "$rows" "$cols" 12 "$t.raw" "$i" >"$t.dump"
  dump2dcm -q +te "$t.dump" "$out/explicit-le/$n.dcm"
  dcmcjpeg -q +e1 "$out/explicit-le/$n.dcm" "$out/jpeg-lossless-sv1/$n.dcm"
  dcmcjpls -q "$out/explicit-le/$n.dcm" "$out/jpeg-ls-lossless/$n.dcm"
  dcmcrle -q "$out/explicit-le/$n.dcm" "$out/rle/$n.dcm"
  mv "$t.raw" "$t.rawl" # opj_compress takes raw little-endian samples by this extension
  opj_compress -i "$t.rawl" -o "$t.j2k" -F "$cols,$rows,1,12,u" >/dev/null 2>&1
  (( $(stat -c %s "$t.j2k") % 2 == 0 )) || printf '\0' >>"$t.j2k" # items have even length
  { echo "(0002,0010) UI =JPEG2000LosslessOnly"
    header "$rows" "$cols" 12 "" "$i" | sed '$d'
    echo "(7fe0,0010) OB (PixelSequence #=2)"
    echo "(fffe,e000) pi (no value available)"
    echo "(fffe,e000) pi =$t.j2k"
    echo "(fffe,e0dd) na (SequenceDelimitationItem)"
  } >"$t.j2k.dump"
  dump2dcm -q "$t.j2k.dump" "$out/j2k-lossless/$n.dcm"
  dims=$("$synth" "$t.pgm" "$t.raw8" --long "$long" --bits 8 --seed "$i")
  read -r rows cols <<<"$dims"
  header "$rows" "$cols" 8 "$t.raw8" "$((i + 500))" >"$t.dump8"
  dump2dcm -q +te "$t.dump8" "$t.8.dcm"
  dcmcjpeg -q +eb "$t.8.dcm" "$out/jpeg-baseline-8bit/$n.dcm"
  rm -f "$t".*
}
export -f make_one header
export out synth long
echo "decode_corpus: making ${#syntaxes[@]} x $count files in $out (long side $long px)" >&2
for i in "${!sources[@]}"; do printf '%s\0%s\0' "$((i + 1))" "${sources[$i]}"; done |
  xargs -0 -n 2 -P "$(nproc)" bash -c 'make_one "$@"' _
rmdir "$out/tmp"
echo "$stamp" >"$out/.stamp"
