"""Ask a trained run for recommendations.

    python -m dpr_jax.recommend --run DIR --user ID [--prompt "..."] [--k 10] [--explain] [--json]
    python -m dpr_jax.recommend --run DIR --history "Toy Story (1995)" 2571 ... [--prompt ...]
    python -m dpr_jax.recommend --run DIR --batch requests.jsonl [--out answers.jsonl]
    python -m dpr_jax.recommend --run DIR --serve [--port 8000] [--host 127.0.0.1]

``DIR`` is a ``--config.run.dir`` trained with stages 1-3 (its ``config.json`` names the data and
the model). ``--history`` takes item ids or titles (a case-insensitive unique part of a title is
enough), oldest first: a cold user the model has never seen.

A prompt may ask for one thing and exclude another ("a comedy, but no romance"): it is split into
its positive and negative part and both steer the list (``prompt_parts`` in the answer).

Batch mode reads one JSON request per line (``{"user": "1", "prompt": "...", "k": 10}`` or
``{"history": [...], ...}``; an optional ``"id"`` is copied to the answer) and streams one JSON
answer per line, in order, with a progress bar on stderr. ``-`` reads stdin / writes stdout. A bad
line gives ``{"line": n, "id": .., "error": "..."}`` in its place and the rest still runs; the exit
status is then 1. The output file appears (atomically) only when every line has been answered.

User mistakes print one ``error:`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import IO

from dpr_jax.errors import UserError

BATCH = 64  # requests per device call in batch mode


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.recommend",
                              description="Recommendations from a trained dpr_jax run.")
  p.add_argument("--run", required=True, help="the run directory (--config.run.dir of training)")
  who = p.add_mutually_exclusive_group()
  who.add_argument("--user", help="a user id of the dataset")
  who.add_argument("--history", nargs="+", metavar="ITEM",
                   help="item ids or titles, oldest first (a cold user)")
  p.add_argument("--prompt", default=None,
                 help='what the user asks for, in plain words (genres to want or avoid;'
                      ' "something like TITLE"; an era, "80s action movies")')
  p.add_argument("--k", type=int, default=10, help="how many items (1-100; default 10)")
  p.add_argument("--explain", action="store_true",
                 help="also show what changed against the unprompted list")
  p.add_argument("--json", action="store_true", help="print the answer as JSON")
  mode = p.add_mutually_exclusive_group()
  mode.add_argument("--batch", metavar="IN.jsonl", help="answer JSONL requests ('-' = stdin)")
  mode.add_argument("--serve", action="store_true", help="serve the demo page and JSON API")
  p.add_argument("--out", default="-", metavar="OUT.jsonl", help="batch answers ('-' = stdout)")
  p.add_argument("--host", default="127.0.0.1", help="--serve: address to bind")
  p.add_argument("--port", type=int, default=8000, help="--serve: port (0 = any free port)")
  return p


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  single = args.user is not None or args.history is not None
  if args.batch is None and not args.serve and not single:
    _parser().error("give --user or --history (or --batch / --serve)")
  if (args.batch is not None or args.serve) and (single or args.prompt is not None):
    _parser().error("--batch and --serve take their requests from the file / the page; drop"
                    " --user/--history/--prompt")
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
  try:
    if args.prompt is not None and not args.prompt.strip():
      raise UserError("--prompt is empty; leave it out for the unprompted list")
    if "://" not in args.run and not os.path.isdir(args.run):  # gs:// is checked on load
      raise UserError(f"run directory {args.run} does not exist")
    from dpr_jax.serve.recommender import Recommender, Request  # Late: jax start-up.

    recommender = Recommender.load(args.run)
    if args.serve:
      return _serve(recommender, args.host, args.port)
    if args.batch is not None:
      return _batch(recommender, args.batch, args.out)
    answer = recommender.recommend(Request(user=args.user, history=tuple(args.history or ()),
                                           prompt=args.prompt or "", k=args.k))
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return 130
  if args.json:
    print(json.dumps(answer, indent=1, ensure_ascii=False))
  else:
    print(format_answer(answer, explain=args.explain))
  return 0


def format_answer(answer: dict, explain: bool = False) -> str:
  """The answer as text: a header, the ranked list and (``explain``) the changes."""
  who = f"user {answer['user']}" if "user" in answer else "given history"
  head = f"{who} ({answer['history_length']} items)"
  parts = answer["prompt_parts"]
  if answer["prompt"]:
    split = []
    if parts["positive"]:
      split.append(f"+ {parts['positive']!r}")
    if parts["negative"]:
      split.append(f"- {parts['negative']!r}")
    if "read_as" in answer:  # the parser: how the request was read, always shown
      head += f", asked {answer['prompt']!r}, read as: {answer['read_as']}"
    else:
      head += f", asked {answer['prompt']!r}" + (f"  [{'  '.join(split)}]" if len(split) > 1
                                                 else "")
  else:
    head += ", no prompt"
  lines = [head] + [f"note: {n}" for n in answer.get("notes", [])]
  entered = set(answer["explain"]["entered"])
  width = max(len(it["title"]) for it in answer["items"]) if answer["items"] else 0
  for it in answer["items"]:
    mark = "*" if it["title"] in entered else " "
    lines.append(f"{it['rank']:>3}.{mark}{it['title']:<{width}}  {', '.join(it['tags'])}")
  if explain:
    ex = answer["explain"]
    if not answer["prompt"]:
      lines.append("(no prompt: this is the unprompted list)")
    else:
      lines.append(f"* new against the unprompted list ({len(ex['entered'])} of"
                   f" {len(answer['items'])})")
      if ex["left"]:
        lines.append("left the list: " + "; ".join(ex["left"]))
      for title, (old, new) in ex["moved"].items():
        lines.append(f"moved: {title} {old} -> {new}")
      tags = sorted(set(ex["tag_share_before"]) | set(ex["tag_share_after"]),
                    key=lambda t: -abs(ex["tag_share_after"].get(t, 0)
                                       - ex["tag_share_before"].get(t, 0)))
      before, after = ex["tag_share_before"], ex["tag_share_after"]
      shifts = [f"{t} {before.get(t, 0):.0%} -> {after.get(t, 0):.0%}"
                for t in tags if before.get(t, 0) != after.get(t, 0)]
      if shifts:
        lines.append("tag shares of the list: " + ", ".join(shifts))
  return "\n".join(lines)


# ================================================================================ batch mode
def _read_requests(stream: IO[str], name: str) -> Iterator[tuple[int, object]]:
  """(line number, parsed JSON or a UserError) per non-empty line."""
  for n, line in enumerate(stream, start=1):
    if not line.strip():
      continue
    try:
      yield n, json.loads(line)
    except json.JSONDecodeError as e:
      yield n, UserError(f"{name}:{n}: not JSON ({e.msg} at column {e.colno})")


def _batch(recommender, source: str, out: str) -> int:
  from tqdm.auto import tqdm

  from dpr_jax import atomic
  from dpr_jax.serve.recommender import Request

  if source != "-" and not os.path.isfile(source):
    raise UserError(f"batch file {source} does not exist")
  name = "<stdin>" if source == "-" else source
  failed = 0

  def answers(stream) -> Iterator[dict]:
    """Answers in input order; requests are sent to the device BATCH at a time."""
    pending: list[tuple[int, object, object]] = []  # (line, id, Request or UserError)

    def flush():
      nonlocal failed
      reqs = [r for _, _, r in pending if isinstance(r, Request)]
      results = iter(recommender.recommend_many(reqs, errors="return"))
      for n, rid, r in pending:
        res = next(results) if isinstance(r, Request) else r
        if isinstance(res, UserError):
          failed += 1
          message = str(res) if str(res).startswith(name) else f"{name}:{n}: {res}"
          yield {"line": n, "id": rid, "error": message}
        else:
          yield ({"id": rid} if rid is not None else {}) | res
      pending.clear()

    for n, obj in _read_requests(stream, name):
      rid = obj.get("id") if isinstance(obj, dict) else None
      item = obj
      if not isinstance(obj, UserError):
        try:
          item = Request.from_json(obj, f"{name}:{n}")
        except UserError as e:
          item = e
      pending.append((n, rid, item))
      if len(pending) == BATCH:
        yield from flush()
    yield from flush()

  with contextlib.ExitStack() as stack:
    stream = sys.stdin if source == "-" else stack.enter_context(
        open(source, encoding="utf-8", errors="strict"))
    total = None if source == "-" else _count_lines(source)
    bar = tqdm(total=total, unit="req", desc="recommend", file=sys.stderr,
               disable=not sys.stderr.isatty() and total is None)
    try:
      if out == "-":
        for ans in answers(stream):
          print(json.dumps(ans, ensure_ascii=False), flush=True)
          bar.update()
      else:
        def write(f):
          for ans in answers(stream):
            f.write((json.dumps(ans, ensure_ascii=False) + "\n").encode("utf-8"))
            bar.update()
        atomic.write_with(out, write)
    except UnicodeDecodeError as e:
      raise UserError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    finally:
      bar.close()
  if failed:
    print(f"error: {failed} request(s) failed; their lines hold the reason", file=sys.stderr)
  return 1 if failed else 0


def _count_lines(path: str) -> int:
  with open(path, "rb") as f:
    return sum(1 for line in f if line.strip())


# ================================================================================ server
def _serve(recommender, host: str, port: int) -> int:
  from dpr_jax.serve.http import make_server

  server = make_server(recommender, host, port)
  h, p = server.server_address[:2]
  print(f"serving on http://{h}:{p}/  (JSON API: POST /api/recommend; Ctrl-C stops)", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
  return 0


if __name__ == "__main__":
  sys.exit(main())
