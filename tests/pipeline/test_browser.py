"""The report of a tiny run, opened in headless Chromium: it renders, every image loads, the
console has no errors, and a screenshot is kept as an artifact (artifacts/browser/, gitignored).

Chromium comes from the Debian packages ``chromium`` and ``chromium-driver``; when it is missing,
``.ci/install-chromium.sh`` installs it, and the test skips (with the reason) only where that is
not possible. No Python browser driver is needed: an error/image check runs inside the page and
``--dump-dom`` hands its result back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")

# Runs before the report's own markup: records every error event (capture phase also catches
# images that fail to load), console.error call and unhandled rejection.
PRE = """<script>window.__errs=[];addEventListener('error',function(e){__errs.push(
e.message||('failed to load '+((e.target&&(e.target.src||'')).slice(0,60))))},true);
addEventListener('unhandledrejection',function(e){__errs.push('rejection '+e.reason)});
var __ce=console.error;console.error=function(){__errs.push([].join.call(arguments,' '));
__ce.apply(console,arguments)};</script>"""
# After load: what rendered, and which images have no pixels.
POST = """<script>addEventListener('load',function(){var imgs=[].slice.call(document.images);
var out={errors:__errs,images:imgs.length,broken:imgs.filter(function(i){return !i.complete||
i.naturalWidth===0}).map(function(i){return i.alt}),sections:[].map.call(
document.querySelectorAll('section h2'),function(h){return h.textContent}),
height:document.body.scrollHeight};var p=document.createElement('pre');p.id='synthmed-check';
p.textContent=JSON.stringify(out);document.body.appendChild(p)});</script>"""


def _browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        subprocess.run(["bash", str(ROOT / ".ci" / "install-chromium.sh")], timeout=900,
                       check=False)
        found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip("no Chromium and .ci/install-chromium.sh could not install it (needs "
                    "apt-get as root or passwordless sudo)")
    return found


def _chromium(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={tmp / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def _check(browser: str, tmp: Path, html: str) -> tuple[dict, list[str]]:
    """Load ``html`` with the in-page checks; (their result, console lines from Chromium)."""
    check = tmp / "check.html"
    check.write_text(html.replace("<head>", "<head>" + PRE, 1).replace("</body>", POST + "</body>"),
                     encoding="utf-8")
    res = _chromium(browser, tmp, "--virtual-time-budget=10000", "--dump-dom", check.as_uri())
    m = re.search(r'<pre id="synthmed-check">(.*?)</pre>', res.stdout, re.S)
    assert m, f"no check result from Chromium (exit {res.returncode}): {res.stderr[-800:]}"
    out = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    return out, [x for x in res.stderr.splitlines() if "CONSOLE" in x and "check.html" in x]


def test_the_check_catches_broken_images_and_console_errors(tmp_path):
    browser = _browser()
    html = ("<html><head><title>t</title></head><body><img alt='bad' src='data:image/png;base64,"
            "AAAA'><script>console.error('boom')</script></body></html>")
    out, _ = _check(browser, tmp_path, html)
    assert out["broken"] == ["bad"] and any("boom" in e for e in out["errors"])


def test_report_renders_in_chromium(tiny_run, tmp_path):
    browser = _browser()
    out, console = _check(browser, tmp_path, (tiny_run / "report.html").read_text("utf-8"))
    assert out["errors"] == [], out["errors"]
    assert out["images"] >= 10 and out["broken"] == [], out["broken"]
    assert len(out["sections"]) == 7 and out["height"] > 3000
    assert console == [], console

    art = Path(os.environ.get("SYNTHMED_ARTIFACTS", ROOT / "artifacts")) / "browser"
    art.mkdir(parents=True, exist_ok=True)
    shot = art / "report.png"
    shot.unlink(missing_ok=True)
    _chromium(browser, tmp_path, "--window-size=1200,2600", f"--screenshot={shot}",
              (tiny_run / "report.html").as_uri())
    assert shot.is_file(), "Chromium wrote no screenshot"
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert img.shape[1] == 1200 and img.std() > 10  # not a blank page
