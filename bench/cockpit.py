"""The cockpit's speed, measured in the browser (Debian's Chromium, headless, 1920×1080):
first contentful paint, every panel showing data, and each panel's refresh (its governed
query) as the hub serves it — on the demo city at a given scale with the live feed on.

Baseline in the same run: the hub answering `SELECT 1` (the protocol's own floor), so the
panel refresh figures read as a ratio to it.

    python bench/cockpit.py [--scale 1] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _common import generator_version, serve  # type: ignore[import-not-found]

from zhongshu.client import Hub

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=5, help="page loads (and refreshes) measured")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zhongshu-bench"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    city = args.workdir / f"cockpit-{args.scale:g}-{generator_version()}"  # never a stale one
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.workdir.chmod(0o755)
    print(f"cockpit — demo city at scale {args.scale:g}, live feed on; building or reusing "
          f"{city}", flush=True)
    with serve(city, None, "--scale", str(args.scale), "--live", "--rate", "200",
               start_s=900) as (url, token):
        time.sleep(5)  # a few live windows
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
            page = ctx.new_page()
            page.goto(f"{url}/cockpit/")
            page.fill("#token", token)
            with page.expect_navigation():
                page.click("#signin button")
            loads = []
            for _ in range(args.runs):
                page.goto(f"{url}/cockpit/")
                deadline = time.monotonic() + 60
                while not page.evaluate("() => window.__zs && window.__zs.expected > 0 && "
                                        "window.__zs.allSettledAt !== null"):
                    if time.monotonic() > deadline:
                        raise RuntimeError("panels did not settle within 60 s")
                    time.sleep(0.05)
                loads.append(page.evaluate("""() => ({
                    fcp: performance.getEntriesByName('first-contentful-paint')[0].startTime,
                    all: window.__zs.allSettledAt,
                    failed: [...document.querySelectorAll('article.panel')]
                            .filter(e => e.dataset.state !== 'ready').map(e => e.dataset.panel)
                })"""))
            panels = page.evaluate("fetch('/cockpit/panels.json').then(r => r.json())")["panels"]
            browser.close()
        fcp = statistics.median(x["fcp"] for x in loads)
        every = statistics.median(x["all"] for x in loads)
        print(f"  first contentful paint   median {fcp:7.0f} ms  (target ≤ 1000)")
        print(f"  every panel showing data median {every:7.0f} ms  (target ≤ 2500)")
        failed = sorted({p for x in loads for p in x["failed"]})
        if failed:
            print(f"  panels not showing data: {', '.join(failed)}")
        with Hub(url, token) as hub:
            def timed(sql: str) -> float:
                samples = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    hub.query_json(sql, "city-operations")
                    samples.append(time.perf_counter() - t)
                return statistics.median(samples) * 1000

            floor = timed("SELECT 1 AS one")
            print(f"  panel refresh (governed query, median of {args.runs}); floor SELECT 1 "
                  f"{floor:.1f} ms")
            worst = 0.0
            for panel in panels:
                if "sql" not in panel:
                    continue
                ms = timed(panel["sql"])
                worst = max(worst, ms)
                print(f"    {panel['id']:<20} {ms:7.1f} ms  ({ms / floor:5.1f}× the floor)")
            print(f"  slowest panel refresh {worst:.0f} ms  (target ≤ 500)")
        print(json.dumps({"scale": args.scale, "fcp_ms": round(fcp), "all_panels_ms":
                          round(every), "slowest_refresh_ms": round(worst)}))


if __name__ == "__main__":
    sys.exit(main())
