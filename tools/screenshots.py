"""Screenshots of executed notebooks' HTML (from `make run`) in Debian's Chromium, cut into pages to look at.

    python -m tools.screenshots build/blip.html [...] --out build/screens
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
WIDTH, PAGE = 1100, 1600


def shoot(html: Path, out: Path) -> list[Path]:
    """The whole page as PNGs of PAGE pixels each: out/<name>-01.png, ..."""
    from playwright.sync_api import sync_playwright
    out.mkdir(parents=True, exist_ok=True)
    full = out / f"{html.stem}-full.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": PAGE})
        page.goto(html.resolve().as_uri(), wait_until="load", timeout=60_000)
        page.screenshot(path=str(full), full_page=True)
        browser.close()
    image = Image.open(full)
    pages = []
    for i, top in enumerate(range(0, image.height, PAGE), 1):
        path = out / f"{html.stem}-{i:02d}.png"
        image.crop((0, top, image.width, min(top + PAGE, image.height))).save(path)
        pages.append(path)
    full.unlink()
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("build/screens"))
    args = parser.parse_args()
    for html in args.html:
        pages = shoot(html, args.out)
        print(f"{html}: {len(pages)} pages -> {pages[0].parent}/{html.stem}-NN.png")


if __name__ == "__main__":
    main()
