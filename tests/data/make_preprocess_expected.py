#!/usr/bin/python3
"""Expected outputs for tests/test_preprocess.c, made without radfuse.

Resampling is Pillow's Image.resize on mode 'F' (32-bit float) images, one
per channel; crop, pad, channel mapping and normalization are numpy,
following the libraries the configs come from:

  transformers (BaseImageProcessor subclasses): resize (get_resize_output_
  image_size: shortest edge to S, long edge int(S * long / short), capped by
  longest_edge), center_crop (offset (H - h) // 2, zero padding when the
  image is smaller), rescale (x * rescale_factor on 8-bit values), normalize
  ((x - mean) / std).
  timm (transforms_imagenet_eval): scale_size = floor(size / crop_pct);
  "center": torchvision Resize(int) (same rule as above) or, for a
  non-square size, ResizeKeepRatio (ratio = min of the edge ratios, sizes
  rounded half to even), then CenterCrop (offset round((H - h) / 2.0), i.e.
  half to even; padding (h - H) // 2 before); "squash": Resize((h, w)) then
  CenterCrop; "border": ResizeKeepRatio(longest=1) then CenterCropOrPad with
  fill round(255 * mean); then ToTensor (our input is already in [0, 1]) and
  Normalize.

Our input is a rendered float image in [0, 1], i.e. an 8-bit image / 255, so
an 8-bit rescale_factor r becomes a factor 255 * r here (do_rescale false:
255). The libraries run Pillow on 8-bit images (quantizing to 1/255); this
reference keeps float, which is what radfuse computes.

Inputs are generated from integers (an integer hash, an 8-pixel checker and
a sawtooth ramp, summed below 2^24 and divided by 2^24), so C regenerates
them bit for bit (tests/test_preprocess.c, make_input).

Writes tests/data/preprocess_expected.txt (one case per line) and
tests/data/preprocess_expected.bin (float32 little-endian, the cases'
outputs back to back, CHW). Run from anywhere:

    apt-get install python3-pil python3-numpy
    /usr/bin/python3 tests/data/make_preprocess_expected.py

Made with Debian 12's Pillow 9.4.0 and numpy 1.24.2.
"""
import json
import math
import os

import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
M32 = 0xFFFFFFFF

FILTERS = {
    "lanczos3": Image.LANCZOS,
    "bicubic": Image.BICUBIC,
    "bilinear": Image.BILINEAR,
    "hamming": Image.HAMMING,
    "box": Image.BOX,
    "nearest": Image.NEAREST,
}
PIL_BY_INT = {0: Image.NEAREST, 1: Image.LANCZOS, 2: Image.BILINEAR, 3: Image.BICUBIC, 4: Image.BOX, 5: Image.HAMMING}
TIMM_INTERP = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS,
               "nearest": Image.NEAREST, "box": Image.BOX, "hamming": Image.HAMMING}


def make_input(h, w, c, seed):
    """h x w x c float32; must match make_input in tests/test_preprocess.c."""
    y, x, ch = np.meshgrid(np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64),
                           np.arange(c, dtype=np.uint64), indexing="ij")
    i = (y * np.uint64(w) + x) * np.uint64(c) + ch
    v = (i * np.uint64(0x9E3779B1) + np.uint64(seed) * np.uint64(0x85EBCA77)) & np.uint64(M32)
    v ^= v >> np.uint64(15)
    v = (v * np.uint64(0x2C1B3C6D)) & np.uint64(M32)
    v ^= v >> np.uint64(12)
    v = (v * np.uint64(0x297A2D39)) & np.uint64(M32)
    v ^= v >> np.uint64(15)
    noise = v >> np.uint64(10)                                            # < 2^22
    checker = (((x >> np.uint64(3)) + (y >> np.uint64(3))) & np.uint64(1)) << np.uint64(23)
    ramp = ((x + np.uint64(2) * y + ch) * np.uint64(4099)) & np.uint64((1 << 22) - 1)
    total = noise + checker + ramp                                        # < 2^24: exact in float32
    return (total.astype(np.float64) / float(1 << 24)).astype(np.float32)


def pil_resize(plane, out_h, out_w, flt):
    img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(img.resize((out_w, out_h), flt), dtype=np.float32)


def resize_chw(img_hwc, out_h, out_w, flt):
    return np.stack([pil_resize(img_hwc[:, :, ch], out_h, out_w, flt) for ch in range(img_hwc.shape[2])])


def to_channels(img_hwc, channels):
    """Gray replicated to 3; RGB to gray with ITU-R 601 luma (Pillow's convert("L") weights)."""
    c = img_hwc.shape[2]
    if c == channels:
        return img_hwc
    if c == 1:
        return np.repeat(img_hwc, 3, axis=2)
    luma = 0.299 * img_hwc[:, :, 0].astype(np.float64) + 0.587 * img_hwc[:, :, 1] + 0.114 * img_hwc[:, :, 2]
    return luma.astype(np.float32)[:, :, None]


def place(chw, out_h, out_w, top, left, fill):
    """The resized image with its (0, 0) at (top, left) of an out_h x out_w canvas of fill."""
    c, rh, rw = chw.shape
    out = np.empty((c, out_h, out_w), dtype=np.float64)
    for ch in range(c):
        out[ch] = fill[ch]
    y0, y1 = max(0, top), min(out_h, top + rh)
    x0, x1 = max(0, left), min(out_w, left + rw)
    if y1 > y0 and x1 > x0:
        out[:, y0:y1, x0:x1] = chw[:, y0 - top:y1 - top, x0 - left:x1 - left]
    return out


def hf_shortest_edge(h, w, s, max_size=None):
    """transformers.image_transforms.get_resize_output_image_size(default_to_square=False)."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = s, int(s * long / short)
    if max_size is not None:
        assert max_size > s
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if w <= h else (new_short, new_long)


def hf_reference(cfg, img):
    """The output of a transformers image processor with this preprocessor_config, on img / 255 given as float."""
    crop = cfg.get("crop_size")
    do_crop = cfg.get("do_center_crop", crop is not None)
    do_resize = cfg.get("do_resize", True)
    flt = PIL_BY_INT[cfg.get("resample", 3)]
    x = to_channels(img, 3)
    h, w = x.shape[:2]
    chw = np.transpose(x, (2, 0, 1))
    if do_resize:
        size = cfg["size"]
        if isinstance(size, dict) and "height" in size:
            rh, rw = size["height"], size["width"]
        elif isinstance(size, dict):
            rh, rw = hf_shortest_edge(h, w, size["shortest_edge"], size.get("longest_edge"))
        elif do_crop:  # an int with a crop: the shortest edge (CLIP-style get_size_dict(default_to_square=False))
            rh, rw = hf_shortest_edge(h, w, size)
        else:
            rh, rw = size, size
        chw = resize_chw(x, rh, rw, flt)
    if do_crop:
        ch_, cw_ = (crop, crop) if isinstance(crop, int) else (crop["height"], crop["width"])
        _, ih, iw = chw.shape
        # transformers' center_crop: top = (H - h) // 2 (also when negative: zero padding)
        chw = place(chw, ch_, cw_, -((ih - ch_) // 2), -((iw - cw_) // 2), [0.0] * 3)
    factor = cfg.get("rescale_factor", 1 / 255) if cfg.get("do_rescale", True) else 1.0
    out = chw.astype(np.float64) * 255.0 * factor
    if cfg.get("do_normalize", True):
        mean = np.broadcast_to(np.asarray(cfg["image_mean"], dtype=np.float64).reshape(-1), (3,))
        std = np.broadcast_to(np.asarray(cfg["image_std"], dtype=np.float64).reshape(-1), (3,))
        out = (out - mean[:, None, None]) / std[:, None, None]
    return out


def torch_round(v):
    return int(round(v))  # Python's round: half to even, as torchvision's int(round(...))


def timm_reference(pc, img):
    """timm.data.transforms_factory.transforms_imagenet_eval with this pretrained_cfg, on img as float."""
    c, h_t, w_t = pc["input_size"]
    crop_pct = pc.get("crop_pct", 0.875)
    mode = pc.get("crop_mode", "center")
    flt = TIMM_INTERP[pc.get("interpolation", "bicubic")]
    mean = np.broadcast_to(np.asarray(pc.get("mean", [0.485, 0.456, 0.406]), dtype=np.float64), (c,))
    std = np.broadcast_to(np.asarray(pc.get("std", [0.229, 0.224, 0.225]), dtype=np.float64), (c,))
    sh, sw = math.floor(h_t / crop_pct), math.floor(w_t / crop_pct)
    x = to_channels(img, c)
    h, w = x.shape[:2]
    fill = [0.0] * c
    if mode == "squash":
        rh, rw = sh, sw
    elif mode == "border":
        ratio = max(h / sh, w / sw) * 1.0 + min(h / sh, w / sw) * 0.0  # ResizeKeepRatio(longest=1)
        rh, rw = round(h / ratio), round(w / ratio)
        fill = [round(255 * m) / 255 for m in mean]
    elif sh == sw:  # torchvision Resize(int): shortest edge
        rh, rw = hf_shortest_edge(h, w, sh)
    else:
        ratio = max(h / sh, w / sw) * 0.0 + min(h / sh, w / sw) * 1.0  # ResizeKeepRatio(longest=0)
        rh, rw = round(h / ratio), round(w / ratio)
    chw = resize_chw(x, rh, rw, flt)

    def offset(resized, out):
        # torchvision CenterCrop / timm CenterCropOrPad: pad (out - in) // 2 before, then crop at round((in - out) / 2)
        if resized < out:
            return (out - resized) // 2
        return -torch_round((resized - out) / 2.0)

    chw = place(chw, h_t, w_t, offset(rh, h_t), offset(rw, w_t), fill)
    return (chw - mean[:, None, None]) / std[:, None, None]


# (name, in_h, in_w, c, seed, out_h, out_w, filter)
RESAMPLE = [("down10_" + f, 250, 300, 1, 1, 24, 32, f) for f in FILTERS] + [
    ("down_mixed", 157, 211, 1, 2, 40, 31, "lanczos3"),
    ("up", 13, 17, 1, 3, 29, 41, "lanczos3"),
    ("up_bicubic", 13, 17, 1, 3, 29, 41, "bicubic"),
    ("up_nearest", 13, 17, 1, 3, 29, 41, "nearest"),
    ("down_up", 40, 9, 1, 4, 13, 30, "lanczos3"),
    ("row", 1, 200, 1, 5, 1, 37, "lanczos3"),
    ("column", 200, 1, 1, 6, 37, 1, "lanczos3"),
    ("pixel_up", 1, 1, 1, 7, 3, 5, "lanczos3"),
    ("tiny_down", 1, 7, 1, 8, 4, 3, "lanczos3"),
    ("identity", 12, 30, 1, 9, 12, 30, "lanczos3"),
    ("width_only", 32, 50, 1, 10, 32, 20, "lanczos3"),
    ("height_only", 32, 50, 1, 11, 10, 50, "lanczos3"),
    ("rgb", 60, 45, 3, 12, 17, 13, "lanczos3"),
    ("factor130", 910, 650, 1, 13, 7, 5, "lanczos3"),
    ("wide", 3, 1000, 1, 14, 2, 9, "lanczos3"),
]

# (config file under tests/data/preprocess, in_h, in_w, c, seed)
PIPELINE = [
    ("hf_bit_shortest.json", 75, 97, 1, 21),
    ("hf_vit_stretch.json", 50, 70, 3, 22),
    ("hf_clip_int.json", 64, 41, 1, 23),
    ("hf_longest_pad.json", 30, 100, 1, 24),
    ("hf_noresize.json", 25, 17, 3, 25),
    ("timm_center.json", 50, 61, 1, 26),
    ("timm_wrapped_gray.json", 40, 33, 3, 27),
    ("timm_border.json", 60, 35, 1, 28),
    ("timm_squash.json", 33, 47, 3, 29),
]


def main():
    lines = ["# made by make_preprocess_expected.py with Pillow %s, numpy %s; do not edit" % (PIL.__version__, np.__version__),
             "# resample NAME IN_H IN_W C SEED OUT_H OUT_W FILTER OFFSET COUNT",
             "# pipeline CONFIG IN_H IN_W C SEED OUT_C OUT_H OUT_W OFFSET COUNT",
             "# OFFSET, COUNT: float32 values in preprocess_expected.bin (CHW)"]
    blobs, offset = [], 0
    for name, ih, iw, c, seed, oh, ow, f in RESAMPLE:
        out = resize_chw(make_input(ih, iw, c, seed), oh, ow, FILTERS[f]).astype(np.float32)
        lines.append("resample %s %d %d %d %d %d %d %s %d %d" % (name, ih, iw, c, seed, oh, ow, f, offset, out.size))
        blobs.append(out.ravel())
        offset += out.size
    for fname, ih, iw, c, seed in PIPELINE:
        with open(os.path.join(HERE, "preprocess", fname)) as fh:
            cfg = json.load(fh)
        img = make_input(ih, iw, c, seed)
        if "pretrained_cfg" in cfg or "input_size" in cfg:
            out = timm_reference(cfg.get("pretrained_cfg", cfg), img)
        else:
            out = hf_reference(cfg, img)
        out = out.astype(np.float32)
        lines.append("pipeline %s %d %d %d %d %d %d %d %d %d" % (fname, ih, iw, c, seed, *out.shape, offset, out.size))
        blobs.append(out.ravel())
        offset += out.size
    with open(os.path.join(HERE, "preprocess_expected.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    np.concatenate(blobs).astype("<f4").tofile(os.path.join(HERE, "preprocess_expected.bin"))
    print("%d cases, %d values" % (len(RESAMPLE) + len(PIPELINE), offset))


if __name__ == "__main__":
    main()
