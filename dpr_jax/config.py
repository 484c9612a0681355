"""The one documented source of configuration defaults.

Every preset in ``configs/`` starts from :func:`default_config` and changes a few fields. The
config is locked after a preset is built, so a typo (``--config.train.lrr``) or a wrong type
(``--config.train.lr=fast``) fails at parse time with a message naming the key.
"""

from __future__ import annotations

import ml_collections

from dpr_jax.errors import ConfigError

MODELS = ("sasrec", "gru4rec")
DATA_FORMATS = ("sasrec", "grouplens", "csv", "mind", "synthetic")


def default_config() -> ml_collections.ConfigDict:
  """All fields, with their defaults and meaning."""
  c = ml_collections.ConfigDict()

  # ---------------------------------------------------------------- data
  c.data = ml_collections.ConfigDict()
  c.data.name = "ml-1m"  # Short name used in reports.
  # One of DATA_FORMATS. "sasrec": `user item` file + item map + movies.dat (the benchmark files,
  # downloaded pinned and checked when no folder is given);
  # "grouplens": ratings.dat + movies.dat as downloaded (fetched when online and missing);
  # "csv": `user,item[,rating][,timestamp|pos]` + tag table; "synthetic": generated, for tests.
  c.data.format = "sasrec"
  # Where the files are. "" means $DPR_DATA_DIR, else the download cache (sasrec, grouplens, mind).
  c.data.dir = ""
  c.data.interactions_file = ""  # csv format: path of the interactions CSV (relative to dir).
  c.data.tags_file = ""  # csv format: item tag table (CSV `item,tags[,title]` or movies.dat).
  c.data.cache_dir = ""  # Preprocessed arrays; "" means ~/.cache/dpr_jax.
  c.data.max_len = 200  # Sequence length fed to the model (docs/protocol.md: 200 ML-1M, 50 MIND).
  # Synthetic generator (format "synthetic" only).
  c.data.synthetic_users = 400
  c.data.synthetic_items = 120
  c.data.synthetic_tags = 6

  # ---------------------------------------------------------------- model
  c.model = ml_collections.ConfigDict()
  c.model.name = "sasrec"  # One of MODELS.
  c.model.embed_dim = 64  # d: item embedding and user-vector width.
  c.model.num_blocks = 2  # SASRec transformer blocks.
  c.model.num_heads = 1  # SASRec attention heads.
  c.model.mlp_dim = 256  # SASRec feed-forward width.
  c.model.gru_dim = 128  # GRU4Rec hidden size (projected back to embed_dim).
  c.model.dropout = 0.2
  # SASRec's training attention in this many causal query blocks: the all-masked blocks above
  # the diagonal are skipped (the same function; dropout drawn per block).
  c.model.attention_query_blocks = 2
  # Compute dtype of the backbone's matmuls: "float32", or "bfloat16" (for accelerators) with
  # float32 parameters (master weights, optimizer state), float32 attention softmax,
  # LayerNorm statistics and cross-entropy.
  c.model.compute_dtype = "float32"
  # The item table is padded to a multiple of this so its vocab axis shards evenly; padded
  # rows never enter the softmax or the ranking.
  c.model.vocab_multiple = 128

  # ---------------------------------------------------------------- train
  c.train = ml_collections.ConfigDict()
  c.train.seed = 0
  c.train.batch_size = 128  # Global batch (users per step), split over the `data` mesh axis.
  c.train.num_epochs = 200
  c.train.lr = 1e-3  # Peak learning rate.
  # "constant", or "cosine": linear warm-up over warmup_epochs, then cosine decay to
  # lr * final_lr_fraction at num_epochs (dpr_jax.train.step.learning_rate).
  c.train.lr_schedule = "constant"
  c.train.warmup_epochs = 1.0
  c.train.final_lr_fraction = 0.0
  c.train.b2 = 0.98
  c.train.weight_decay = 0.0
  c.train.grad_clip = 1.0  # Global-norm clip; 0 disables.
  c.train.steps_per_call = 8  # Steps fused into one jit call (lax.scan over stacked batches).
  # Compute only the real (non-padded) positions, packed into a static buffer: all of SASRec,
  # whole sequences laid into rows of max_len (SASRec.packed), GRU4Rec's head
  # (loss.compact_softmax_ce). Same loss, less work on left-padded batches; dropout masks are
  # drawn in the packed shape.
  c.train.compact_head = True
  # Static buffer sizes for packing (dpr_jax/train/packing.py): the sizes that pad the run's
  # own calls least, the largest their maximum, so nothing overflows. Each level is one compiled
  # program and wastes fewer padded rows. 0 = automatic (packing.num_levels: 4 on CPU, 1 on
  # accelerators, where compiles cost more; reports/perf_log.md).
  c.train.packing_levels = 0
  # Packing groups: each of G groups of B / G consecutive sequences (a data shard) is packed into
  # its own share of the buffer, so every device packs and computes only its shard. 0 = the
  # mesh's data size. The layout, and so the dropout draws, depend on G (not the loss function).
  c.train.pack_groups = 0
  # Validation NDCG@10, and a periodic checkpoint for resuming, every N epochs (rounded up to
  # whole jit calls).
  c.train.eval_every_epochs = 5
  # Early stopping: evaluations without a new best validation NDCG@10; 0 = never stop early
  # (all num_epochs run, e.g. to time a full training).
  c.train.patience = 8
  # Stop at the first validation with NDCG@10 >= this (0: no target), or the first after this
  # many minutes of training (0: no budget); the best checkpoint is then evaluated as usual.
  c.train.target_ndcg = 0.0
  c.train.time_budget_min = 0.0

  # ---------------------------------------------------------------- DPR (stages 2-3)
  # Which stages to run, a comma list of 1 (backbone), 2 (align), 3 (steer); see
  # dpr_jax/train/stages.py. A stage not listed is restored from its checkpoint when needed.
  c.stages = "1"
  c.dpr = ml_collections.ConfigDict()
  c.dpr.domain = "ml-1m"  # Prompt templates: "ml-1m" (movie genres) or "mind" (news categories).
  c.dpr.text_encoder = ""  # "" = all-MiniLM-L6-v2, pinned (docs/data.md); or a folder / hub id.
  c.dpr.adapter_hidden = 256
  c.dpr.num_experts = 4
  c.dpr.top_k = 1
  c.dpr.expert_hidden = 256
  c.dpr.dispatch = "auto"  # MoE dispatch: "dense", "grouped" (ragged_dot) or "auto".
  # Router gates (dpr_jax.models.moe.Router): "probs", the chosen experts' softmax
  # probabilities over all experts (the steering loss trains the router for every top_k), or
  # "renormalized" over the top_k chosen (top_k >= 2 only).
  c.dpr.gates = "probs"
  # "learned" (the router) or "polarity": the ablation's reference, 2 experts picked by the
  # request's polarity (needs num_experts=2, top_k=1). A single MLP: num_experts=1.
  c.dpr.routing = "learned"
  # How a negative request ("no horror") steers at inference (dpr_jax.models.dpr.negative_part):
  # "full" uses the head's whole offset; "tags" keeps only its tag coordinates (a learned soft
  # filter) and leaves the user vector's item-space part as it is; "subtract" keeps the
  # item-space offset and, of the tag coordinates, only the tags it lowers most, so "no X"
  # never raises another tag. The steering evaluation compares the modes on validation
  # (results_steering.json, "selection").
  c.dpr.negative_steering = "subtract"
  # How a positive request ("more comedy") steers at inference (dpr_jax.models.dpr.positive_part):
  # "full" uses the head's tag coordinates as trained; "focus" keeps, of the tags it raises,
  # only the one(s) raised most (at least half the top raise), so "more X" does not also lift
  # the tags that co-occur with X; the tags it lowers stay lowered. Compared on validation like
  # negative_steering.
  c.dpr.positive_steering = "focus"
  # How strongly a positive request steers at inference (dpr_jax.models.dpr.scale_offset): its
  # offset, item space and tag coordinates, times this (1 = as trained, 0 = the backbone).
  c.dpr.positive_scale = 1.0
  # The strengths of a positive / negative part when DPR ranks under the hard filter of the
  # request's tags (the "DPR + filter" rows of the steering evaluation): the filter already
  # keeps only what was asked, so the offset there only orders the allowed items. The
  # recommender serves DPR alone.
  c.dpr.filter_positive_scale = 1.0
  c.dpr.filter_negative_scale = 1.0
  # The experts also read the user's tag profile: each tag's share among the items of the
  # history ([T], dpr_jax.models.dpr.tag_profile), which says which tags are on- and off-habit
  # for this user (h only hints at it). Stage 3 starts it from zero weights on stage 2's head.
  # A concluded experiment, off (configs/experiments/user_profile.py).
  c.dpr.user_profile = False
  # How a request is read before DPR steers (dpr_jax.prompts.reader): "parser", the learned
  # request parser trained in stage 2 (every tag's stance: want / avoid / none), or "rules",
  # the clause splitter and negation lexicon of dpr_jax.prompts.combine.
  c.dpr.reader = "parser"
  # The training-template families whose mean features are a wanted tag's canonical part when
  # the parser reads a request (dpr_jax.prompts.reader.canonical_features): "positive" or
  # "positive,nuanced" (the earlier definition; reports/experiments.md, 2026-12-03 night).
  c.dpr.canonical_want = "positive"
  # The request parser (dpr_jax.models.parser), trained in stage 2 on generated requests
  # (dpr_jax.prompts.generator) and the training templates.
  c.parser = ml_collections.ConfigDict()
  c.parser.hidden = 128  # Width of the parser.
  c.parser.num_heads = 4  # Heads of its self-attention and tag attention.
  c.parser.max_tokens = 32  # Tokens read per request (the first ones, [CLS] included).
  # Whether each sentence of a request is encoded on its own before the parser reads the token
  # states (dpr_jax.prompts.encoder.TextEncoder.token_states, by_sentence; measured on
  # validation: reports/experiments.md, 2026-12-07 session 20).
  c.parser.sentence_states = False
  c.parser.dropout = 0.1
  # Share of training requests whose own surface forms are hidden from the span matching, so
  # that tags are also found through similar forms (as unseen ones must be).
  c.parser.form_dropout = 0.6
  # Rank of a learned residual map on the encoder's states before the span matching
  # (dpr_jax.models.parser.SimilarityAdapter), trained with the parser; 0 keeps the frozen
  # encoder's similarity (chosen on validation: reports/experiments.md, 2026-12-02).
  c.parser.similarity_rank = 64
  # A learned LayerNorm on the token states before the parser's token projection (for encoders
  # whose states are on another scale; reports/experiments.md, 2026-12-06).
  c.parser.input_norm = False
  # Whether the parser reads the lexical negation cue (dpr_jax.prompts.features.negation_cue)
  # beside the token states; False feeds it zeros in training and reading.
  c.parser.negation_cue = True
  # Whether each tag also reads the negation cue of its own clause (the per-token cue of the
  # clause its attention lands on, dpr_jax.prompts.features.clause_cues), so that an avoid in
  # one clause does not reach a wish in another (chosen on validation: reports/experiments.md,
  # 2026-12-07 session 21; runs trained before it existed read with False, EARLIER_PARSER_VALUES).
  c.parser.clause_cue = True
  # Weight of an auxiliary per-token loss marking where a generated request names a tag (its
  # surface forms' tokens); > 0 also gates the span matches by that mark
  # (dpr_jax.models.parser.RequestParser.slot_gate; reports/experiments.md, 2026-12-06).
  c.parser.slot_loss = 0.0
  c.parser.requests = 6000  # Generated training requests (plus the training templates).
  # Share of the generated combined requests written as two clauses, a positive and a negative
  # construction one after the other (dpr_jax.prompts.generator.compose).
  c.parser.composed_share = 0.0
  # The same for the generated positive (negative) requests: two one-tag constructions of the kind.
  c.parser.composed_single_share = 0.0
  c.parser.heldout_requests = 1000  # Generated held-out requests for results_parser.json.
  c.parser.epochs = 20
  c.parser.lr = 1e-3
  c.parser.batch_size = 128
  # Parsers trained independently (member k with seed train.seed + k: its own generated
  # requests, initialisation and order) whose stance probabilities are averaged (an ensemble;
  # chosen on validation: reports/experiments.md, 2026-12-03, 2026-12-05 and 2026-12-05 evening;
  # 1 = a single parser).
  c.parser.members = 10
  # A second frozen text encoder (a folder, e.g. all-mpnet-base-v2 from launch/get_mpnet.py)
  # whose own parsers join the ensemble, each reading that encoder's token states; "" = none
  # (reports/experiments.md, 2026-12-06 session 11).
  c.parser.mix_encoder = ""
  c.parser.mix_members = 3  # Parsers reading the second encoder (seeds train.seed + k).
  # Their share of the vote: (1 - w) x the first group's mean + w x theirs.
  c.parser.mix_weight = 0.25
  # A read tag whose other polarity (avoid for a wanted tag, want for an avoided one) gets at
  # least this probability is shown as unsure in the answer; the list does not change (chosen on
  # ML-1M's validation: reports/experiments.md, 2026-12-06 session 18, again for the clause-cue
  # parsers in 2026-12-07 session 22).
  c.parser.unsure_at = 0.10
  c.stage2 = ml_collections.ConfigDict()
  c.stage2.epochs = 60
  c.stage2.lr = 1e-3
  c.stage2.batch_size = 256
  c.stage2.checkpoint_every_epochs = 20
  c.stage3 = ml_collections.ConfigDict()
  c.stage3.epochs = 30
  c.stage3.lr = 1e-3
  c.stage3.batch_size = 512
  c.stage3.checkpoint_every_epochs = 5
  c.stage3.positions_per_user = 8  # Examples per user: the last positions of the training part.
  # Compute the examples' user vectors with the backbone's dropout on
  # (dpr_jax.train.examples.user_vectors). A concluded experiment, off
  # (configs/experiments/noisy_user_vectors.py).
  c.stage3.noisy_user_vectors = False
  c.stage3.mix_positive = 0.45  # Shares of positive and negative examples; the rest unprompted.
  c.stage3.mix_negative = 0.45
  c.stage3.nuanced_share = 0.3  # Of the positive examples, share prompted by a nuanced text.
  c.stage3.tag_weight = 1.0  # Positive: weight of -log P(tag).
  c.stage3.suppress_weight = 8.0  # Negative: weight of -log(1 - P(tag)).
  # Positive: weight of -log P(target | tag), the order within the asked tag -- the only part of
  # a positive ranking the hard filter leaves to DPR (the full CE already holds it once).
  c.stage3.in_tag_weight = 0.0
  c.stage3.aux_weight = 0.01  # MoE load-balance loss.
  c.stage3.offset_weight = 0.05  # L2 on the item-space part of the steering offset.
  # L2 on a negative example's tag coordinates other than its tag: "no X" should lower X and
  # leave the order of the remaining items (which carry other tags) alone. A concluded
  # experiment, off (configs/experiments/focus_loss.py).
  c.stage3.focus_weight = 0.0
  # Learning rate of the backbone and item table in stage 3. 0 (default): frozen, and every
  # example's user vector is computed once before training. > 0: they train too (AdamW at this
  # rate, dropout on), one backbone forward per user per step gives the user vectors of all its
  # examples, and the stage-3 checkpoint carries the tuned backbone, which then serves DPR's
  # requests (the baselines keep stage 1's). See dpr_jax.train.steering.
  c.stage3.backbone_lr = 0.0

  # ---------------------------------------------------------------- eval
  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 256  # Users per ranking call (split over the `data` mesh axis).
  # Users whose vectors are computed at once inside a ranking call (a lax.map over chunks,
  # which bounds the call's working set; dpr_jax.eval.ranking.chunked). -1: automatic, 16 per
  # data-parallel device for SASRec on CPU (where XLA:CPU slows down on large matmul outputs;
  # reports/perf_log.md), the whole call elsewhere (GRU4Rec's scan pays per chunk; accelerators
  # want large batches). 0: the whole call.
  c.eval.chunk = -1
  c.eval.ks = (10, 20)

  # ---------------------------------------------------------------- mesh
  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # -1: all devices not used by `model`.
  c.mesh.model = 1  # Shards the item table's vocab axis (and, later, experts).

  # ---------------------------------------------------------------- distributed
  # Multi-process runs (several hosts, or several processes on one machine). With a coordinator
  # every process passes the same address and count and its own id; on a Cloud TPU pod set
  # `auto` and JAX finds the topology itself. Each process reads its share of every batch.
  c.distributed = ml_collections.ConfigDict()
  c.distributed.coordinator = ""  # "host:port" of process 0; "" = single process.
  c.distributed.num_processes = 1
  c.distributed.process_id = 0
  c.distributed.auto = False  # jax.distributed.initialize() without arguments (TPU pods).

  # ---------------------------------------------------------------- run
  c.run = ml_collections.ConfigDict()
  c.run.dir = "runs/default"  # Checkpoints, metrics.jsonl, TensorBoard, results.
  c.run.progress = True  # tqdm progress bars.
  return c


def finalize(config: ml_collections.ConfigDict, arg: str | None = None
             ) -> ml_collections.ConfigDict:
  """Applies the preset argument (``configs/x.py:dpr`` runs stages 1-3) and locks the config,
  so unknown keys and wrong types fail when overridden."""
  if arg == "dpr":
    config.stages = "1,2,3"
  elif arg:
    raise ConfigError(f"unknown preset argument {arg!r} (expected 'dpr' or nothing)")
  config.lock()
  return config


def variant(preset_file, arg: str | None, run_dir: str,
            overrides: dict) -> ml_collections.ConfigDict:
  """The config of preset file ``preset_file`` (its ``get_config(arg)``) with ``overrides``
  ({"group.field": value}) set and its own ``run.dir`` (changed fields make the stages'
  checkpoints another config's). For presets built on presets (configs/experiments/)."""
  import importlib.util
  import pathlib

  path = pathlib.Path(preset_file)
  spec = importlib.util.spec_from_file_location(f"dpr_preset_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  config.unlock()
  for key, value in overrides.items():
    group, field = key.split(".")
    config[group][field] = value
  config.run.dir = run_dir
  config.lock()
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks values that types alone cannot; raises ConfigError naming the key."""
  def need(ok: bool, key: str, msg: str):
    if not ok:
      raise ConfigError(f"config.{key}: {msg}")

  need(config.model.name in MODELS, "model.name", f"must be one of {MODELS}, got {config.model.name!r}")
  need(config.data.format in DATA_FORMATS, "data.format",
       f"must be one of {DATA_FORMATS}, got {config.data.format!r}")
  need(config.data.max_len >= 2, "data.max_len", "must be >= 2")
  need(config.train.batch_size >= 1, "train.batch_size", "must be >= 1")
  need(config.train.num_epochs >= 1, "train.num_epochs", "must be >= 1")
  need(config.train.lr > 0, "train.lr", "must be > 0")
  need(config.train.steps_per_call >= 1, "train.steps_per_call", "must be >= 1")
  need(config.train.lr_schedule in ("constant", "cosine"), "train.lr_schedule",
       f"must be 'constant' or 'cosine', got {config.train.lr_schedule!r}")
  need(config.train.warmup_epochs >= 0, "train.warmup_epochs", "must be >= 0")
  need(0.0 <= config.train.final_lr_fraction <= 1.0, "train.final_lr_fraction",
       "must be in [0, 1]")
  need(isinstance(config.train.packing_levels, int) and config.train.packing_levels >= 0,
       "train.packing_levels",
       f"must be an integer >= 0 (0: automatic), got {config.train.packing_levels!r}")
  need(isinstance(config.train.pack_groups, int) and config.train.pack_groups >= 0
       and config.train.batch_size % max(config.train.pack_groups, 1) == 0,
       "train.pack_groups", f"must be an integer >= 0 dividing train.batch_size (0: the mesh's "
       f"data size), got {config.train.pack_groups!r}")
  need(config.train.eval_every_epochs >= 1, "train.eval_every_epochs", "must be >= 1")
  need(config.train.patience >= 0, "train.patience", "must be >= 0 (0: no early stopping)")
  need(0 <= config.train.target_ndcg <= 1, "train.target_ndcg", "must be in [0, 1] (0: none)")
  need(config.train.time_budget_min >= 0, "train.time_budget_min", "must be >= 0 (0: none)")
  need(0.0 <= config.model.dropout < 1.0, "model.dropout", "must be in [0, 1)")
  need(config.model.compute_dtype in ("float32", "bfloat16"), "model.compute_dtype",
       f"must be float32 or bfloat16, got {config.model.compute_dtype!r}")
  need(config.model.embed_dim % config.model.num_heads == 0, "model.num_heads",
       f"must divide model.embed_dim={config.model.embed_dim}")
  need(isinstance(config.model.attention_query_blocks, int)
       and config.model.attention_query_blocks >= 1, "model.attention_query_blocks",
       f"must be an integer >= 1, got {config.model.attention_query_blocks!r}")
  need(config.eval.batch_size >= 1, "eval.batch_size", "must be >= 1")
  need(config.eval.chunk >= -1, "eval.chunk", "must be -1 (automatic), 0 (whole call) or >= 1")
  need(1 <= config.dpr.top_k <= config.dpr.num_experts, "dpr.top_k",
       f"must be in [1, dpr.num_experts={config.dpr.num_experts}]")
  need(config.dpr.negative_steering in ("full", "tags", "subtract"), "dpr.negative_steering",
       f"must be 'full', 'tags' or 'subtract', got {config.dpr.negative_steering!r}")
  need(config.dpr.positive_steering in ("full", "focus"), "dpr.positive_steering",
       f"must be 'full' or 'focus', got {config.dpr.positive_steering!r}")
  for field in ("positive_scale", "filter_positive_scale", "filter_negative_scale"):
    need(float(config.dpr[field]) >= 0, f"dpr.{field}", f"must be >= 0, got {config.dpr[field]}")
  need(config.dpr.gates in ("probs", "renormalized"), "dpr.gates",
       f"must be 'probs' or 'renormalized', got {config.dpr.gates!r}")
  need(not (config.dpr.gates == "renormalized" and config.dpr.top_k == 1
            and config.dpr.num_experts > 1), "dpr.gates",
       "'renormalized' with top_k=1 is the constant 1.0 (no gradient into the router);"
       " use 'probs'")
  need(config.dpr.canonical_want in ("positive", "positive,nuanced"), "dpr.canonical_want",
       f"must be 'positive' or 'positive,nuanced', got {config.dpr.canonical_want!r}")
  need(config.dpr.reader in ("parser", "rules"), "dpr.reader",
       f"must be 'parser' or 'rules', got {config.dpr.reader!r}")
  need(not (config.parser.sentence_states and config.parser.slot_loss > 0),
       "parser.sentence_states", "cannot be combined with parser.slot_loss > 0 (the slot"
       " targets are laid out on the whole request's tokens)")
  need(not (config.parser.clause_cue and config.parser.sentence_states), "parser.clause_cue",
       "cannot be combined with parser.sentence_states (the clause cues are laid out on the"
       " whole request's tokens); set parser.clause_cue=False with it")
  need(not (config.parser.clause_cue and not config.parser.negation_cue), "parser.clause_cue",
       "needs parser.negation_cue = True (it is that cue, read per clause); set"
       " parser.clause_cue=False with parser.negation_cue=False")
  for field in ("hidden", "num_heads", "max_tokens", "requests", "heldout_requests", "epochs",
                "batch_size", "members"):
    need(int(config.parser[field]) >= 1, f"parser.{field}", f"must be >= 1, got"
         f" {config.parser[field]}")
  need(int(config.parser.mix_members) >= 1, "parser.mix_members",
       f"must be >= 1, got {config.parser.mix_members}")
  need(0.0 <= float(config.parser.mix_weight) <= 1.0, "parser.mix_weight",
       f"must be in [0, 1], got {config.parser.mix_weight}")
  need(0.0 < float(config.parser.unsure_at) <= 1.0, "parser.unsure_at",
       f"must be in (0, 1], got {config.parser.unsure_at}")
  need(not config.parser.mix_encoder or config.parser.mix_encoder != config.dpr.text_encoder,
       "parser.mix_encoder", "must differ from dpr.text_encoder (it is the second encoder)")
  need(int(config.parser.similarity_rank) >= 0, "parser.similarity_rank",
       f"must be >= 0, got {config.parser.similarity_rank}")
  need(config.parser.hidden % config.parser.num_heads == 0, "parser.hidden",
       "must be a multiple of parser.num_heads")
  need(config.dpr.routing in ("learned", "polarity"), "dpr.routing",
       f"must be 'learned' or 'polarity', got {config.dpr.routing!r}")
  need(config.dpr.routing != "polarity" or (config.dpr.num_experts, config.dpr.top_k) == (2, 1),
       "dpr.routing", "'polarity' needs dpr.num_experts=2 and dpr.top_k=1")
  need(config.dpr.dispatch in ("dense", "grouped", "auto"), "dpr.dispatch",
       "must be dense, grouped or auto")
  need(0 <= config.stage3.mix_positive + config.stage3.mix_negative <= 1, "stage3.mix_positive",
       "mix_positive + mix_negative must be in [0, 1]")
  need(config.stage3.backbone_lr >= 0, "stage3.backbone_lr", "must be >= 0 (0: frozen backbone)")
  need(config.stage3.positions_per_user >= 1, "stage3.positions_per_user", "must be >= 1")
  need(all(k >= 1 for k in config.eval.ks), "eval.ks", "cutoffs must be >= 1")
  need(10 in config.eval.ks, "eval.ks",
       f"must include 10 (validation NDCG@10 picks the best checkpoint), got {tuple(config.eval.ks)}")


CONFIG_FILE = "config.json"
# Parser settings added after runs and checkpoints existed, with the value every earlier one was
# trained with. A run's config.json that lacks one was written before it existed and loads with
# this value (:func:`load_run_config`), and a parser checkpoint's fingerprint leaves a setting
# out at this value (dpr_jax.checkpoint.parser_fingerprint), so earlier checkpoints restore.
EARLIER_PARSER_VALUES = {"composed_share": 0.0, "composed_single_share": 0.0,
                         "input_norm": False, "slot_loss": 0.0, "negation_cue": True,
                         "sentence_states": False, "clause_cue": False}
# Model fields that change how a step computes, not what a checkpoint holds: a checkpoint stays
# usable when they change (e.g. train in bfloat16, evaluate in float32).
RUNTIME_MODEL_FIELDS = ("compute_dtype", "attention_query_blocks")


def model_fingerprint(model_config: ml_collections.ConfigDict) -> dict:
  """The model fields a checkpoint must agree with (all but :data:`RUNTIME_MODEL_FIELDS`)."""
  return {k: v for k, v in model_config.to_dict().items() if k not in RUNTIME_MODEL_FIELDS}


# DPR fields that only change inference (how a trained head is applied).
RUNTIME_DPR_FIELDS = ("negative_steering", "positive_steering", "positive_scale",
                      "filter_positive_scale", "filter_negative_scale", "reader",
                      "canonical_want")


def dpr_fingerprint(dpr_config: ml_collections.ConfigDict) -> dict:
  """The DPR fields a stage-2/3 checkpoint must agree with (``user_profile`` concerns stage 3
  only: dpr_jax.train.steering adds it there, when on)."""
  return {k: v for k, v in dpr_config.to_dict().items()
          if k not in RUNTIME_DPR_FIELDS + ("user_profile",)}


def save_run_config(config: ml_collections.ConfigDict, run_dir) -> None:
  """Writes ``<run_dir>/config.json`` (atomically) so a trained run can be served from its
  directory alone (``python -m dpr_jax.recommend --run DIR``). Relative local data and cache
  directories are stored absolute, so the file does not depend on the working directory."""
  import json
  import os

  from dpr_jax import atomic

  values = config.to_dict()
  for key in ("dir", "cache_dir"):
    path = values["data"][key]
    if path and "://" not in path:
      values["data"][key] = os.path.abspath(path)
  atomic.write_text(os.path.join(os.fspath(run_dir), CONFIG_FILE),
                    json.dumps(values, indent=2, sort_keys=True, default=list))


def load_run_config(run_dir) -> ml_collections.ConfigDict:
  """The config a run was trained with (see :func:`save_run_config`), locked and validated.

  Keys the file lacks (runs made before a field existed) keep their defaults, or for the parser
  the value runs had before the field existed (:data:`EARLIER_PARSER_VALUES`); keys the current
  code does not know are an error.
  """
  import json
  import os

  from dpr_jax import atomic

  directory = atomic.as_path(run_dir)  # a local folder or a gs:// URI
  path = directory / CONFIG_FILE
  if not directory.is_dir():
    raise ConfigError(f"run directory {run_dir} does not exist")
  if not path.exists():
    raise ConfigError(f"{path} not found: the run was not trained by this version of dpr_jax"
                      " (or has not finished stage 1 yet)")
  try:
    values = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ConfigError(f"{path}: unreadable config ({e})") from None
  config = default_config()
  config.lock()
  try:
    config.update(values)
    saved_parser = values.get("parser") or {}
    for key, earlier in EARLIER_PARSER_VALUES.items():
      if key not in saved_parser:
        config.parser[key] = earlier
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    raise ConfigError(f"{path}: {e}") from None
  config.run.dir = os.fspath(run_dir)
  validate(config)
  return config
