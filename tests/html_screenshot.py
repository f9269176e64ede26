#!/usr/bin/env python3
"""Render an HTML report in headless Chromium and check that it shows something.

    html_screenshot.py REPORT.html OUT.png [EXPECTED_TEXT ...]

Takes a screenshot (Debian's chromium package) and decodes the PNG here (zlib + PNG row
filters, no imaging library) to check the page is not blank: enough non-white pixels, many
distinct colours, and the student's series colour (#1f77b4) drawn in the charts. Then asks
Chromium for the rendered DOM and checks every EXPECTED_TEXT (the run's numbers) is in it.
Exits non-zero with a message on the first failed check; a missing chromium is a failure.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

WIDTH, HEIGHT = 1100, 2400


def chromium(args):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        sys.exit("FAIL: chromium not installed (docker/setup.sh --test installs it)")
    profile = tempfile.mkdtemp(prefix="ccd-chromium-")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--user-data-dir=" + profile, "--window-size=%d,%d" % (WIDTH, HEIGHT)] + args
    try:
        return subprocess.run(cmd, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def decode_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit("FAIL: %s is not a PNG" % path)
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                sys.exit("FAIL: unexpected PNG format depth=%d colour type=%d" % (depth, ctype))
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    html, png, expected = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3:]
    url = "file://" + html
    r = chromium(["--screenshot=" + os.path.abspath(png), url])
    if r.returncode != 0 or not os.path.exists(png):
        sys.exit("FAIL: chromium screenshot failed (%d): %s" % (r.returncode, r.stderr.decode()[-2000:]))
    w, h, bpp, rows = decode_png(png)
    total = nonwhite = blue = 0
    colours = set()
    for line in rows:
        for x in range(0, len(line), bpp):
            r_, g_, b_ = line[x], line[x + 1], line[x + 2]
            total += 1
            if r_ < 235 or g_ < 235 or b_ < 235:
                nonwhite += 1
            if abs(r_ - 31) < 20 and abs(g_ - 119) < 20 and abs(b_ - 180) < 20:
                blue += 1
            colours.add((r_ >> 3, g_ >> 3, b_ >> 3))
    frac = nonwhite / total
    print("screenshot %dx%d: %.1f%% non-white pixels, %d colours, %d student-blue pixels"
          % (w, h, 100 * frac, len(colours), blue))
    if frac < 0.03:
        sys.exit("FAIL: the page is (nearly) blank")
    if len(colours) < 50:
        sys.exit("FAIL: only %d colours: charts not drawn?" % len(colours))
    if blue < 200:
        sys.exit("FAIL: the student's series colour is (nearly) absent: charts not drawn?")
    r = chromium(["--dump-dom", url])
    dom = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0 or "<svg" not in dom:
        sys.exit("FAIL: chromium --dump-dom failed or shows no SVG")
    for text in expected:
        if text not in dom:
            sys.exit("FAIL: the rendered page lacks %r" % text)
    print("report renders: %d expected values present" % len(expected))


if __name__ == "__main__":
    main()
