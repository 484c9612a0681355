"""Steering evaluation: tasks SEQ, POS, NEG, NUANCED, POLARITY of docs/protocol.md, and
COMBINED (ours, beyond the protocol's set; defined below).

Every task is built on both splits (docs/protocol.md): on validation (validation target,
history before it, no test item anywhere) and on test. Every method runs on the same users and
the same backbone, the one DPR ranks with (docs/protocol.md):

  backbone       the prompt is ignored: ``h @ E^T``
  filter         backbone scores, items failing the (oracle) tag constraint removed
  text_rerank    backbone top-100 reranked by ``alpha * z(backbone) + (1 - alpha) * c`` where
                 ``c`` is the cosine of the prompt and the item's text, with the sign of the
                 prompt's polarity (a negative part subtracts its similarity; COMBINED adds
                 both parts'); at ``alpha = 1`` it is the backbone exactly. ``alpha`` is tuned
                 per task on validation users.
  dpr            ``h' @ E^T`` with ``h'`` the steered user vector
  dpr+filter     DPR scores with the filter

and, for POS and NUANCED only, a bound rather than a method:

  selection_bound  the filter that also knows the protocol's selection rule: it keeps only the items
                   of g for which g would be *the* prompted tag (g is their rarest off-habit tag
                   for this user). The target always passes, so this is the filter's best case
                   when the prompt's only information is which tag was picked; a steering model
                   that beats the filter by more has learnt to rank inside the tag better than
                   the backbone, not just the rule.

DPR ranks with stage 1's backbone unless stage 3 tuned it (``stage3.backbone_lr > 0``); then every
primary row uses stage 3's backbone, and two reference rows, ``stage1 backbone`` and ``stage1
filter``, give the baselines on stage 1's (``Scorer.reference_user_vectors``), so a gain from the
tuning alone is visible as such.

Selection: every choice is made on the validation tables and recorded in ``selection`` (the
text-rerank mix per task; the steering modes ``dpr.positive_steering`` / ``negative_steering``,
compared on validation POS / NEG NDCG@10: the test rows use the configured modes, the ones the
recommender serves, and ``selection`` says whether validation agrees). ``routing`` reports, per
split, which experts the positive and the negative requests of POLARITY go to, and the usage
entropy.

Seen items are masked (the target stays rankable). Users and prompts come from the split's
inputs and held-out ("eval") prompts only; every random choice is drawn from a seeded generator.
POLARITY counts a user when the positive prompt raises the tag's share of the top-10 over the
method's own unprompted list and the negative prompt lowers it (``polarity``, the protocol's strict
definition and the primary figure: a share already at 10/10 cannot be raised, so such a user
fails). ``polarity_loose`` is the looser variant, named as such: a positive prompt that keeps the
share at 1.0 counts as raising it. Both count a negative prompt that keeps a share of 0 as
lowering it. ``ceiling`` is the share of users whose unprompted top-10 is not all of the tag: the
highest strict figure any method can reach.

COMBINED (docs/protocol.md): one request asks for a tag g and excludes another, h ("a comedy
film, but no romance please"), in held-out phrasings (``templates.COMBINED``; nothing is trained
on them). g is the target's rarest off-habit tag (as in POS); h is the tag the backbone's top-10
carries most among the tags the target lacks, kept when it fills at least
``COMBINED_MIN_COUNT`` slots ("frequent"). The text is read into its two parts by the configured
reader (dpr_jax.prompts.reader); DPR steers with both parts at once
(``dpr_jax.models.dpr.compose``); the filter keeps items with g and without h. Metrics: target
NDCG@10 / Recall@10 and ``satisfied@10``, the share of the top-10 that has g and lacks h.
``split_ok`` is the share of requests read as exactly one positive and one negative part. Text rerank adds the wanted part's similarity and subtracts the excluded part's.

Layout: :mod:`.tasks` (who is asked what), :mod:`.methods` (how each method ranks, on device),
:mod:`.evaluator` (the tables, the validation choices), :mod:`.report` (files for people).
"""

from dpr_jax.eval.steering.evaluator import (evaluate_everyday, evaluate_split, evaluate_steering,
                                             polarity_moves, routing_report, select_modes,
                                             tune_alphas)
from dpr_jax.eval.steering.methods import (METHODS, REFERENCE_METHODS, Scorer, evaluate_method,
                                           head_routes, head_steer)
from dpr_jax.eval.steering.report import TABLE_KEYS, write_steering_results
from dpr_jax.eval.steering.tasks import (COMBINED_MIN_COUNT, EVERYDAY_TASKS, EVERYDAY_USERS,
                                         OFF_HABIT_SHARE, Task, build_tasks, everyday_tasks,
                                         tag_share)

__all__ = ["COMBINED_MIN_COUNT", "EVERYDAY_TASKS", "EVERYDAY_USERS", "METHODS",
           "OFF_HABIT_SHARE", "REFERENCE_METHODS", "TABLE_KEYS", "Scorer", "Task", "build_tasks",
           "evaluate_everyday", "evaluate_method", "evaluate_split", "evaluate_steering",
           "everyday_tasks", "head_routes", "head_steer", "polarity_moves", "routing_report",
           "select_modes", "tag_share", "tune_alphas", "write_steering_results"]
