"""Run as a script under XLA_FLAGS=--xla_force_host_platform_device_count=8 (see test_sharding).

The DPR stages' device work outside the training step -- the user-vector precompute of stage 3,
the backbone's unprompted top-10 and the steering evaluation -- on a 1-device mesh and on
(data, model) meshes, with the same parameters; prints one JSON verdict per mesh.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax import sharding
from dpr_jax.bench.common import random_params, synthetic_split
from dpr_jax.eval.steering import Scorer, Task, evaluate_method, head_steer
from dpr_jax.models import build_backbone, build_head
from dpr_jax.train.examples import user_vectors
from dpr_jax.train.run import _backbone_top10

sys.path.insert(0, "configs")
import tiny  # noqa: E402

NUM_ITEMS, NUM_TAGS, TEXT_DIM = 50, 3, 6


def scorer_on(mesh, config, backbone_host, head_host):
  """A Scorer whose parameters are laid out on ``mesh`` as the DPR run lays them out."""
  model = build_backbone(config.model, NUM_ITEMS, config.data.max_len)
  head = build_head(config, NUM_TAGS)
  boxed = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)},
                                            jnp.zeros((1, config.data.max_len), jnp.int32)))
  backbone = jax.device_put(backbone_host, sharding.tree_shardings(mesh, boxed["params"]))
  head_params = jax.device_put(head_host, sharding.replicated(mesh))
  rng = np.random.default_rng(1)
  vocab = model.apply({"params": backbone_host}, method=model.item_table).shape[0]
  tags = np.zeros((vocab, NUM_TAGS), bool)
  tags[1:NUM_ITEMS + 1] = rng.random((NUM_ITEMS, NUM_TAGS)) < 0.4

  item_text = rng.standard_normal((vocab, TEXT_DIM - 1)).astype(np.float32)
  return model, backbone, Scorer(
      user_vectors=lambda x: model.apply({"params": backbone}, x, method=model.user_vector),
      steer=head_steer(head, head_params),
      table=model.apply({"params": backbone}, method=model.item_table),
      item_text=jnp.asarray(item_text / np.linalg.norm(item_text, axis=1, keepdims=True)),
      item_tags=jnp.asarray(tags), num_items=NUM_ITEMS, mesh=mesh)


def measure(mesh, config, backbone_host, head_host, data, task):
  model, backbone, scorer = scorer_on(mesh, config, backbone_host, head_host)
  h = user_vectors(model, backbone, data.train_inputs[:37], batch_size=16, mesh=mesh)
  top10 = _backbone_top10(scorer, data, "test", batch_size=24)
  methods = {m: evaluate_method(scorer, data, "test", task, None, m, alpha=0.5, batch_size=24)
             for m in ("backbone", "filter", "text_rerank", "dpr", "dpr+filter")}
  return h, top10, methods


def main(meshes):
  config = tiny.get_config("sasrec")
  model = build_backbone(config.model, NUM_ITEMS, config.data.max_len)
  head = build_head(config, NUM_TAGS)
  backbone_host = random_params(lambda: model.init(
      {"params": jax.random.key(0)}, jnp.zeros((1, config.data.max_len), jnp.int32))["params"])
  head_host = random_params(lambda: head.init(
      {"params": jax.random.key(0)}, jnp.zeros((1, config.model.embed_dim)),
      jnp.zeros((1, TEXT_DIM)), jnp.ones((1,), bool))["params"], seed=1)
  data = synthetic_split(40, NUM_ITEMS, config.data.max_len)
  rng = np.random.default_rng(2)
  users = np.arange(30)
  features = rng.standard_normal((4, TEXT_DIM)).astype(np.float32) * 0.5
  task = Task("POS", users, rng.integers(0, NUM_TAGS, 30), rng.integers(0, 4, 30), +1,
              tag2=np.zeros(30, np.int64), prompt2=-np.ones(30, np.int64), features=features,
              negative=np.array([False, True, False, True]))
  one = sharding.make_mesh(1, 1, devices=jax.devices()[:1])
  h1, t1, m1 = measure(one, config, backbone_host, head_host, data, task)
  for data_axis, model_axis in meshes:
    many = sharding.make_mesh(data_axis, model_axis)
    hn, tn, mn = measure(many, config, backbone_host, head_host, data, task)
    print(json.dumps({
        "mesh": [data_axis, model_axis], "devices": len(jax.devices()),
        "user_vectors_shape": list(hn.shape),
        "user_vectors_max_diff": float(np.max(np.abs(h1 - hn))),
        "top10_equal": bool(np.array_equal(t1, tn)),
        "methods": {m: {"ndcg_max_diff": float(np.max(np.abs(m1[m][0] - mn[m][0]))),
                        "share_equal": bool(np.array_equal(m1[m][2], mn[m][2])),
                        "top10_equal": bool(np.array_equal(m1[m][3], mn[m][3])),
                        "users": int(len(mn[m][0]))} for m in m1},
    }))


if __name__ == "__main__":
  main([tuple(int(a) for a in m.split("x")) for m in sys.argv[1:]])
