"""The three training stages, written as data.

| stage | trains | initialised from | data |
|---|---|---|---|
| 1 backbone | backbone, item table | scratch | next-item prediction (``trainer.py``) |
| 2 align | prompt adapter | stage 1 (backbone, frozen) | prompts -> items of their tags |
| 3 steer | adapter, router, experts (+ backbone at ``stage3.backbone_lr`` when > 0) | stage 2 (+ stage 1's backbone) | positive / negative / unprompted examples |

Every stage has its own checkpoint folder ``<run>/stage<k>/checkpoints`` and starts from the
previous stage's final parameters. What does not train is frozen through an optax mask
(``optax.set_to_zero`` on those leaves), so a frozen parameter cannot move. A stage's
``finetunes`` groups train at their own, smaller learning rate when the config switches them on
(stage 3's ``backbone``: the backbone and item table, taken from stage 1's best checkpoint);
otherwise they are not part of the stage's parameters at all.
"""

from __future__ import annotations

import dataclasses

import jax
import optax


@dataclasses.dataclass(frozen=True)
class StageSpec:
  number: int
  name: str
  trains: tuple[str, ...]  # top-level groups of the DPR head's params that receive updates
  init_from: int | None  # the stage whose final parameters this one starts from
  # Groups that may train at a second, small learning rate (off unless the config sets it);
  # they start from stage 1's best parameters.
  finetunes: tuple[str, ...] = ()


STAGES = {
    1: StageSpec(1, "backbone", ("backbone",), None),
    2: StageSpec(2, "align", ("adapter",), 1),
    3: StageSpec(3, "steer", ("adapter", "router", "experts"), 2, finetunes=("backbone",)),
}


def parse_stages(text: str) -> tuple[int, ...]:
  """"1,2,3" -> (1, 2, 3); refuses unknown stages (ConfigError)."""
  from dpr_jax.errors import ConfigError

  try:
    stages = tuple(sorted({int(s) for s in str(text).replace(" ", "").split(",") if s}))
  except ValueError:
    stages = ()
  if not stages or any(s not in STAGES for s in stages):
    raise ConfigError(f"config.stages={text!r}: give a comma list of stages among 1,2,3")
  return stages


def masked_optimizer(tx: optax.GradientTransformation, params, trains: tuple[str, ...],
                     finetune: optax.GradientTransformation | None = None,
                     finetunes: tuple[str, ...] = ()):
  """``tx`` on the top-level groups in ``trains``, ``finetune`` on those in ``finetunes``;
  every other leaf gets a zero update."""
  def label_all(group: str, subtree):
    label = ("train" if group in trains else
             "finetune" if group in finetunes and finetune is not None else "frozen")
    return jax.tree.map(lambda _: label, subtree)

  labels = {k: label_all(k, v) for k, v in params.items()}
  transforms = {"train": tx, "frozen": optax.set_to_zero()}
  if finetune is not None:
    transforms["finetune"] = finetune
  return optax.multi_transform(transforms, labels)
