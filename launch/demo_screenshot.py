"""Screenshot of the demo page for a trained run (what reports/demo/ holds).

    python launch/demo_screenshot.py --run DIR --user 42 --prompt "a comedy, but no romance" \
        --out reports/demo/page.png

Serves DIR on a free localhost port, opens the page in headless Chromium (Debian's chromium and
chromium-driver, driven by selenium), submits the request like a user would, checks that the
rendered list is the JSON endpoint's answer, and saves the screenshot and that answer (JSON).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import threading
import urllib.request


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--run", required=True)
  p.add_argument("--user", required=True)
  p.add_argument("--prompt", required=True)
  p.add_argument("--k", type=int, default=10)
  p.add_argument("--out", default="reports/demo/page.png")
  args = p.parse_args()

  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import expected_conditions as ec
  from selenium.webdriver.support.ui import WebDriverWait

  from dpr_jax.serve.http import make_server
  from dpr_jax.serve.recommender import Recommender

  server = make_server(Recommender.load(args.run), "127.0.0.1", 0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  url = f"http://127.0.0.1:{server.server_address[1]}"
  opts = webdriver.ChromeOptions()
  opts.binary_location = shutil.which("chromium")
  for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--window-size=1280,1000"):
    opts.add_argument(flag)
  browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
  try:
    browser.get(url + "/")
    wait = WebDriverWait(browser, 120)
    wait.until(lambda b: "users" in b.find_element(By.ID, "about").text)
    browser.find_element(By.ID, "user").send_keys(args.user)
    browser.find_element(By.ID, "prompt").send_keys(args.prompt)
    browser.find_element(By.ID, "k").clear()
    browser.find_element(By.ID, "k").send_keys(str(args.k))
    browser.find_element(By.ID, "submit").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results li")))
    shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results li .title")]
    body = json.dumps({"user": args.user, "prompt": args.prompt, "k": args.k}).encode()
    req = urllib.request.Request(url + "/api/recommend", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
      answer = json.loads(r.read())
    if shown != [it["title"] for it in answer["items"]]:
      print("error: the page shows another list than the endpoint", file=sys.stderr)
      return 1
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(out))
    out.with_suffix(".json").write_text(json.dumps(answer, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")
  finally:
    browser.quit()
    server.shutdown()
  return 0


if __name__ == "__main__":
  sys.exit(main())
