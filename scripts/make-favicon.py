"""Draw Strata's mark (three stacked layers) into assets/logo.svg and assets/favicon.ico.

The ICO holds PNG images at 16, 32 and 48 pixels, rasterised here from the same
polygons as the SVG (no image library needed). Run after changing the shapes:

    python scripts/make-favicon.py
"""

import struct
import zlib
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
VIEWBOX = 32
# (fill, polygon) from back to front, in a 32x32 box: a rhombus and two chevron bands.
LAYERS = (
    ("#5b5bd6", [(16, 2), (29, 8.5), (16, 15), (3, 8.5)]),
    ("#7d7ef0", [(3, 12.5), (16, 19), (29, 12.5), (29, 16), (16, 22.5), (3, 16)]),
    ("#a9a9f8", [(3, 20), (16, 26.5), (29, 20), (29, 23.5), (16, 30), (3, 23.5)]),
)
SUPERSAMPLE = 4


def svg() -> str:
    shapes = "\n".join(
        f'  <polygon fill="{fill}" points="{" ".join(f"{x:g},{y:g}" for x, y in points)}"/>' for fill, points in LAYERS
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {VIEWBOX} {VIEWBOX}" width="{VIEWBOX}" '
        f'height="{VIEWBOX}" role="img" aria-label="Strata">\n  <title>Strata</title>\n{shapes}\n</svg>\n'
    )


def _inside(x: float, y: float, points: list[tuple[float, float]]) -> bool:
    inside = False
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _rgba(size: int) -> bytes:
    rows = []
    scale = VIEWBOX / size
    for py in range(size):
        row = bytearray([0])  # PNG filter: none
        for px in range(size):
            r = g = b = a = 0.0
            for sy in range(SUPERSAMPLE):
                for sx in range(SUPERSAMPLE):
                    x = (px + (sx + 0.5) / SUPERSAMPLE) * scale
                    y = (py + (sy + 0.5) / SUPERSAMPLE) * scale
                    for fill, points in reversed(LAYERS):  # front first
                        if _inside(x, y, points):
                            r += int(fill[1:3], 16)
                            g += int(fill[3:5], 16)
                            b += int(fill[5:7], 16)
                            a += 255
                            break
            samples = SUPERSAMPLE * SUPERSAMPLE
            covered = a / 255
            if covered:
                row += bytes([round(r / covered), round(g / covered), round(b / covered), round(a / samples)])
            else:
                row += bytes(4)
        rows.append(bytes(row))
    return b"".join(rows)


def png(size: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(_rgba(size), 9))
        + chunk(b"IEND", b"")
    )


def ico(sizes: tuple[int, ...] = (16, 32, 48)) -> bytes:
    images = [png(size) for size in sizes]
    offset = 6 + 16 * len(images)
    entries = b""
    for size, image in zip(sizes, images, strict=True):
        entries += struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(image), offset)
        offset += len(image)
    return struct.pack("<HHH", 0, 1, len(images)) + entries + b"".join(images)


if __name__ == "__main__":
    ASSETS.mkdir(exist_ok=True)
    (ASSETS / "logo.svg").write_text(svg())
    (ASSETS / "favicon.ico").write_bytes(ico())
    print(f"wrote {ASSETS / 'logo.svg'} and {ASSETS / 'favicon.ico'}")
