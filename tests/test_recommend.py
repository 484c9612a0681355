"""Asking a trained run: the Recommender against numpy references, the CLI (single, batch),
the JSON endpoint and the demo page in headless Chromium."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpr_jax.models.dpr import compose
from dpr_jax.prompts.features import prompt_features

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rec(dpr_run):
  from dpr_jax.serve.recommender import Recommender

  config, _ = dpr_run
  return Recommender.load(config.run.dir)


def _reference(rec, history, parts=(), k=10, negative=(), mode=None, positive_mode=None,
               positive_scale=None):
  """Top-k by numpy from the restored params: steer with each part, add offsets, mask history.
  Parts listed in ``negative`` steer as ``mode`` says (default: the run's
  ``dpr.negative_steering``): "tags" keeps their tag coordinates only, "subtract" their offset
  and the tags lowered by at least half the most-lowered one. The other parts steer as
  ``positive_mode`` says (default: ``dpr.positive_steering``): "focus" drops the raised tags
  below half the most-raised one, and their offset is times ``positive_scale`` (default:
  ``dpr.positive_scale``)."""
  mode = mode or rec.config.dpr.negative_steering
  scale = rec.config.dpr.positive_scale if positive_scale is None else positive_scale
  positive_mode = positive_mode or rec.config.dpr.positive_steering
  model, params = rec._model, rec._backbone
  table = np.asarray(model.apply({"params": params}, method=model.item_table))
  h = _user_vector(rec, history)
  steered = []
  for text in parts:
    user, bias = _head_output(rec, history, text)
    if text in negative and mode == "tags":
      user = h
    if text in negative and mode == "subtract":
      bias = np.where(bias <= 0.5 * min(bias.min(), 0.0), bias, 0.0)
    if text not in negative and positive_mode == "focus":
      bias = np.where((bias > 0) & (bias < 0.5 * bias.max()), 0.0, bias)
    if text not in negative:
      user, bias = h + scale * (np.asarray(user) - h), scale * bias
    steered.append((user, bias))
  user, bias = compose(h, steered) if steered else (h, jnp.zeros((1, len(rec.data.tag_names))))
  scores = np.asarray(user)[0] @ table.T
  scores[:len(rec.data.item_tags)] += rec.data.item_tags.astype(np.float32) @ np.asarray(bias)[0]
  scores[0] = scores[rec.data.num_items + 1:] = -np.inf
  scores[np.asarray(history)] = -np.inf
  return [str(rec.data.item_ids[i - 1]) for i in np.argsort(-scores, kind="stable")[:k]]


def _user_vector(rec, history):
  """float[1, d]: the backbone's query for a history (oldest first), as in ``self(seqs)``."""
  inputs = np.zeros((1, rec.data.max_len), np.int32)
  tail = history[-rec.data.max_len:]
  inputs[0, -len(tail):] = tail
  return rec._model.apply({"params": rec._backbone}, jnp.asarray(inputs))[:, -1]


def _head_output(rec, history, text):
  """(user float[1, d], tag_bias float[1, T]): the head's raw steering for one prompt part."""
  counts = rec.data.item_tags[np.asarray(history)].sum(0).astype(np.float32)
  profile = jnp.asarray(counts / max(counts.sum(), 1))[None]  # the tag profile of the history
  feats = jnp.asarray(prompt_features(rec.encoder.encode([text]), [text]))
  out = rec._head.apply({"params": rec._head_params}, _user_vector(rec, history), feats,
                        jnp.ones((1,), bool), profile if rec._head.use_profile else None)
  return out.user, np.asarray(out.tag_bias)


def _with_dpr(rec, **fields):
  """The same trained run served with other (inference-only) ``dpr`` settings."""
  from dpr_jax.serve.recommender import Recommender

  config = rec.config.copy_and_resolve_references()
  config.unlock()
  config.dpr.update(fields)
  return Recommender(config, rec.data, rec._model, rec._backbone, rec._head, rec._head_params,
                     rec.encoder)


def _ids(answer):
  return [it["item"] for it in answer["items"]]


# ------------------------------------------------------------------------------ Recommender
def test_answers_match_a_numpy_reference(rec):
  from dpr_jax.serve.recommender import Request

  user = rec.data.user_ids[3]
  history = rec.user_history(user)
  plain = rec.recommend(Request(user=user, k=10))
  assert _ids(plain) == _reference(rec, history)
  assert plain["explain"]["unprompted"] == [it["title"] for it in plain["items"]]
  assert not set(_ids(plain)) & {str(rec.data.item_ids[i - 1]) for i in history}
  # A combined request: both parts steer at once (their offsets add).
  tags = rec.data.tag_names
  prompt = f"an {tags[2].lower()} film, but no {tags[0].lower()} please"
  combined = rec.recommend(Request(user=user, prompt=prompt, k=10))
  parts = combined["prompt_parts"]
  assert parts["positive"] and parts["negative"]
  assert _ids(combined) == _reference(rec, history, [parts["positive"], parts["negative"]],
                                      negative=[parts["negative"]])
  assert _ids(combined) != _ids(plain)
  # A single wish is steered with the whole, unchanged text.
  single = rec.recommend(Request(user=user, prompt="more comedy films, please", k=10))
  assert single["prompt_parts"] == {"positive": "more comedy films, please", "negative": ""}
  assert _ids(single) == _reference(rec, history, ["more comedy films, please"])


def test_every_negative_steering_mode_matches_the_reference(rec):
  from dpr_jax.models.dpr import NEGATIVE_STEERING
  from dpr_jax.serve.recommender import Request

  user = rec.data.user_ids[4]
  history = rec.user_history(user)
  prompt = f"a {rec.data.tag_names[3].lower()} film, but no {rec.data.tag_names[0].lower()}"
  answers = set()
  for mode in NEGATIVE_STEERING:
    request = Request(user=user, prompt=prompt, k=10)
    answer = _with_dpr(rec, negative_steering=mode).recommend(request)
    pos, neg = answer["prompt_parts"]["positive"], answer["prompt_parts"]["negative"]
    assert _ids(answer) == _reference(rec, history, [pos, neg], negative=[neg], mode=mode), mode
    answers.add(tuple(_ids(answer)))
  assert len(answers) > 1  # the modes do differ


def test_every_positive_steering_mode_matches_the_reference(rec):
  from dpr_jax.models.dpr import POSITIVE_STEERING
  from dpr_jax.serve.recommender import Request

  def side_raise(history, prompt):  # the head raises a tag a little beside its top raise
    bias = _head_output(rec, history, prompt)[1]
    return ((bias > 0) & (bias < 0.5 * bias.max())).any()

  # A request where "focus" drops something, so the two modes are really compared.
  user, prompt = next((u, f"more {t.lower()} films, please") for u in rec.data.user_ids[:20]
                      for t in rec.data.tag_names
                      if side_raise(rec.user_history(u), f"more {t.lower()} films, please"))
  history = rec.user_history(user)
  scores = set()
  for mode in POSITIVE_STEERING:
    request = Request(user=user, prompt=prompt, k=10)
    answer = _with_dpr(rec, positive_steering=mode).recommend(request)
    assert answer["prompt_parts"]["positive"] == prompt
    assert _ids(answer) == _reference(rec, history, [prompt], positive_mode=mode), mode
    scores.add(tuple(it["score"] for it in answer["items"]))
  assert len(scores) == len(POSITIVE_STEERING)  # the modes do differ
  for scale in (0.0, 2.5):  # the steering's strength (0: the unprompted list)
    answer = _with_dpr(rec, positive_scale=scale).recommend(Request(user=user, prompt=prompt))
    assert _ids(answer) == _reference(rec, history, [prompt], positive_scale=scale), scale
  plain = _ids(rec.recommend(Request(user=user)))
  assert _ids(_with_dpr(rec, positive_scale=0.0).recommend(
      Request(user=user, prompt=prompt))) == plain


def test_a_head_reading_the_tag_profile_gets_the_whole_history_s(rec):
  """With ``dpr.user_profile`` the served head reads the tag shares of the request's whole
  history (as in the steering evaluation), not of the cut input window."""
  from dpr_jax.models import build_head
  from dpr_jax.serve.recommender import Recommender, Request
  from dpr_jax.train import steering

  config = rec.config.copy_and_resolve_references()
  config.unlock()
  config.dpr.user_profile = True
  num_tags = len(rec.data.tag_names)
  params = steering.widen_for_profile(config, rec._head_params)
  w1 = params["experts"]["w1"]
  params["experts"]["w1"] = w1.at[:, -num_tags:].set(
      3.0 * jax.random.normal(jax.random.key(0), w1[:, -num_tags:].shape))
  profile_rec = Recommender(config, rec.data, rec._model, rec._backbone,
                            build_head(config, num_tags), params, rec.encoder)
  user = next(u for u in rec.data.user_ids  # the profile covers more than the input window
              if len(rec.user_history(u)) > rec.data.max_len)
  history = rec.user_history(user)
  prompt = f"more {rec.data.tag_names[1].lower()} films, please"
  answer = profile_rec.recommend(Request(user=user, prompt=prompt, k=10))
  assert _ids(answer) == _reference(profile_rec, history, [prompt])
  assert _ids(answer) != _ids(rec.recommend(Request(user=user, prompt=prompt, k=10)))


def test_cold_history_by_title_or_id_and_batching(rec):
  from dpr_jax.serve.recommender import Request

  items = [5, 17, 42]
  by_id = Request(history=tuple(rec.data.item_ids[i - 1] for i in items), prompt="no horror")
  by_title = Request(history=tuple(rec.data.item_titles[i - 1].upper() for i in items),
                     prompt="no horror")
  a, b = rec.recommend(by_id), rec.recommend(by_title)
  assert _ids(a) == _ids(b) == _reference(rec, np.array(items), ["no horror"],
                                          negative=["no horror"])
  # One device call for many requests gives each the same answer as alone.
  reqs = [by_id, Request(user=rec.data.user_ids[0], k=3),
          Request(user=rec.data.user_ids[7], prompt="a comedy, but no action", k=7)]
  many = rec.recommend_many(reqs)
  assert [_ids(m) for m in many] == [_ids(rec.recommend(r)) for r in reqs]
  assert [len(m["items"]) for m in many] == [10, 3, 7]


@pytest.mark.parametrize("request_, message", [
    (dict(user="no-such-user"), "unknown user 'no-such-user'"),
    (dict(history=("tem 1",)), "ambiguous"),  # Item 1, Item 10, ... all contain it
    (dict(history=("not a title",)), "unknown item 'not a title'"),
    (dict(user="1", k=0), "k must be between 1 and 100"),
    (dict(user="1", prompt="   "), "prompt is empty"),
    (dict(), "either a user id or a history"),
])
def test_bad_requests_name_the_problem(rec, request_, message):
  from dpr_jax.serve.recommender import Request, RequestError

  with pytest.raises(RequestError, match=message):
    rec.recommend(Request(**request_))
  bad = Request(**request_)
  ok = Request(user=rec.data.user_ids[0], k=2)
  out = rec.recommend_many([bad, ok], errors="return")
  assert isinstance(out[0], RequestError) and len(out[1]["items"]) == 2


def test_request_json_is_validated():
  from dpr_jax.serve.recommender import Request, RequestError

  assert Request.from_json({"history": [1, "Heat (1995)"], "k": 3}) == Request(
      history=("1", "Heat (1995)"), k=3)
  # An absent or null prompt asks for the unprompted list; an empty string is a mistake.
  assert Request.from_json({"user": 7, "prompt": None}) == Request(user="7")
  for obj, message in [([], "expected a JSON object"), ({"user": "1", "kk": 3}, "unknown field"),
                       ({"history": "Heat"}, "history must be a list"),
                       ({"user": "1", "k": "ten"}, "k must be an integer"),
                       ({"user": "1", "prompt": 5}, "prompt must be a string"),
                       ({"user": "1", "prompt": ""}, "prompt is empty; leave it out"),
                       ({"user": "1", "prompt": " \t"}, "prompt is empty; leave it out")]:
    with pytest.raises(RequestError, match=message):
      Request.from_json(obj, "x.jsonl:3")


# ------------------------------------------------------------------------------ CLI
def _cli(*args, stdin=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "dpr_jax.recommend", *args], capture_output=True,
                        text=True, env=env, input=stdin, timeout=300, cwd=ROOT)


def test_cli_single_request_and_batch(dpr_run, rec, tmp_path):
  from dpr_jax.serve.recommender import Request

  run_dir = dpr_run[0].run.dir
  user = rec.data.user_ids[2]
  requests = [{"id": "a", "user": user, "prompt": "an animated film, but no comedy", "k": 4},
              {"history": [rec.data.item_titles[10], rec.data.item_ids[20]], "k": 2},
              {"user": "nobody"}]
  src = tmp_path / "req.jsonl"
  src.write_text("\n".join(json.dumps(r) for r in requests) + "\nnot json\n")
  out = tmp_path / "answers.jsonl"
  proc = _cli("--run", run_dir, "--batch", str(src), "--out", str(out))
  assert proc.returncode == 1, proc.stderr  # two lines failed
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: 2 request(s) failed; their lines hold the reason")
  lines = [json.loads(x) for x in out.read_text().splitlines()]
  assert len(lines) == 4 and lines[0]["id"] == "a"
  assert _ids(lines[0]) == _ids(rec.recommend(Request.from_json(requests[0])))
  assert _ids(lines[1]) == _ids(rec.recommend(Request.from_json(requests[1])))
  assert lines[2] == {"line": 3, "id": None,
                      "error": f"{src}:3: unknown user 'nobody' (the dataset has 400 users, e.g."
                               " 1, 2, 3, 4, 5)"}
  assert lines[3]["line"] == 4 and "not JSON" in lines[3]["error"]
  # One request, as text with --explain.
  proc = _cli("--run", run_dir, "--user", user, "--prompt", "an animated film, but no comedy",
              "--k", "4", "--explain")
  assert proc.returncode == 0, proc.stderr
  text = proc.stdout
  assert f"user {user}" in text and "[+ 'an animated film'  - 'no comedy']" in text
  titles = [it["title"] for it in lines[0]["items"]]
  for rank, title in enumerate(titles, start=1):
    assert f"{rank:>3}." in text and title in text
  assert "tag shares of the list:" in text
  # User mistakes: one error line, status 2, no traceback.
  proc = _cli("--run", str(tmp_path / "missing"), "--user", "1")
  assert proc.returncode == 2 and proc.stderr.strip() == (
      f"error: run directory {tmp_path / 'missing'} does not exist")


# ------------------------------------------------------------------------------ HTTP + page
@pytest.fixture(scope="module")
def server(rec):
  from dpr_jax.serve.http import make_server

  srv = make_server(rec, "127.0.0.1", 0)
  thread = threading.Thread(target=srv.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{srv.server_address[1]}"
  srv.shutdown()
  srv.server_close()


def _post(url, body: bytes):
  req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
  try:
    with urllib.request.urlopen(req, timeout=60) as r:
      return r.status, json.loads(r.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


def test_json_endpoint(server, rec):
  from dpr_jax.serve.recommender import Request

  with urllib.request.urlopen(server + "/api/info", timeout=30) as r:
    info = json.loads(r.read())
  assert info["num_items"] == rec.data.num_items and info["tags"] == list(rec.data.tag_names)
  body = {"user": rec.data.user_ids[5], "prompt": "a comedy, but no action", "k": 5}
  status, answer = _post(server + "/api/recommend", json.dumps(body).encode())
  assert status == 200 and answer == json.loads(json.dumps(rec.recommend(Request(**body))))
  status, err = _post(server + "/api/recommend", b"{not json")
  assert status == 400 and err["error"].startswith("body is not JSON")
  status, err = _post(server + "/api/recommend", b'{"user": "zzz"}')
  assert status == 400 and "unknown user 'zzz'" in err["error"]
  with urllib.request.urlopen(server + "/api/items?q=item%2011", timeout=30) as r:
    assert [it["title"] for it in json.loads(r.read())["items"]] == ["Item 11", "Item 110",
                                                                      "Item 111", "Item 112",
                                                                      "Item 113", "Item 114",
                                                                      "Item 115", "Item 116",
                                                                      "Item 117", "Item 118",
                                                                      "Item 119"]


def _chrome():
  """A headless Chromium WebDriver, or a skip when Chromium / chromedriver / selenium is absent."""
  webdriver = pytest.importorskip("selenium.webdriver")
  chromium = shutil.which("chromium") or shutil.which("chromium-browser")
  driver = shutil.which("chromedriver")
  if not (chromium and driver):
    pytest.skip("needs Debian's chromium and chromium-driver (see docs/testing.md)")
  from selenium.webdriver.chrome.service import Service

  opts = webdriver.ChromeOptions()
  opts.binary_location = chromium
  for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--window-size=1200,900"):
    opts.add_argument(flag)
  return webdriver.Chrome(service=Service(driver), options=opts)


def test_demo_page_in_headless_chromium(server, rec, tmp_path):
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import expected_conditions as ec
  from selenium.webdriver.support.ui import WebDriverWait

  browser = _chrome()
  try:
    browser.get(server + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda b: "users" in b.find_element(By.ID, "about").text)
    user, prompt = rec.data.user_ids[9], "an animated film, but no comedy please"
    browser.find_element(By.ID, "user").send_keys(user)
    browser.find_element(By.ID, "prompt").send_keys(prompt)
    browser.find_element(By.ID, "k").clear()
    browser.find_element(By.ID, "k").send_keys("8")
    browser.find_element(By.ID, "submit").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results li")))
    shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results li .title")]
    _, answer = _post(server + "/api/recommend",
                      json.dumps({"user": user, "prompt": prompt, "k": 8}).encode())
    assert shown == [it["title"] for it in answer["items"]]
    before = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#unprompted li .title")]
    assert before == answer["explain"]["unprompted"]
    assert "no comedy please" in browser.find_element(By.ID, "parts").text
    shot = pathlib.Path(os.environ.get("DPR_SCREENSHOT", tmp_path / "page.png"))
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A bad request shows the server's message, and no stale list.
    browser.find_element(By.ID, "user").clear()
    browser.find_element(By.ID, "user").send_keys("nobody")
    browser.find_element(By.ID, "submit").click()
    wait.until(lambda b: "unknown user" in b.find_element(By.ID, "status").text)
    assert browser.find_elements(By.CSS_SELECTOR, "#results li") == []
  finally:
    browser.quit()


def test_titles_as_people_type_them():
  """An exact title without its year, or with its article in front, names the one item that has
  it, though longer titles contain it; two items of one name stay ambiguous."""
  from dpr_jax.serve.recommender import ItemIndex, RequestError

  index = ItemIndex(["1", "3114", "2571", "500", "501", "7"],
                    ["Toy Story (1995)", "Toy Story 2 (1999)", "Matrix, The (1999)",
                     "Hamlet (1990)", "Hamlet (1996)", "Sabrina (1995)"])
  assert index.resolve(["Toy Story", "toy story (1995)", "Toy Story 2"]).tolist() == [1, 1, 2]
  assert index.resolve(["The Matrix", "the matrix (1999)", "Matrix"]).tolist() == [3, 3, 3]
  assert index.resolve(["7", "sabrina", "Hamlet (1996)"]).tolist() == [6, 6, 5]
  with pytest.raises(RequestError, match=r"'Hamlet' is ambiguous \(2 titles match: Hamlet "
                                         r"\(1990\); Hamlet \(1996\)\)"):
    index.resolve(["Hamlet"])
  with pytest.raises(RequestError, match=r"'Toy' is ambiguous"):
    index.resolve(["Toy"])
  with pytest.raises(RequestError, match=r"unknown item 'Alien'"):
    index.resolve(["Alien"])
