"""Natural-language steering prompts for the recommender: templates, surface forms and splits.

Users steer the recommender with short requests. docs/protocol.md names three families:

* ``positive`` -- asks for more of a tag ("I'm in the mood for a {tag} film tonight");
* ``negative`` -- asks to avoid a tag ("anything but a {tag} movie, please");
* ``nuanced``  -- describes the wish without naming the tag ("something that will make me laugh"
  -> Comedy). A nuanced prompt may carry several tags ("cartoons the little ones can watch" ->
  Animation and Children's).

Design
------
Tags. ``ml-1m`` uses the 18 genres exactly as spelled in ``movies.dat``; ``mind`` uses the 17
news categories of MIND-small (``news.tsv`` column 2). Wording follows the domain: films and
movies for ML-1M; news, stories, articles, coverage and headlines for MIND.

Surface forms. A tag is never a fixed phrase: ``SURFACE_FORMS[domain][tag]`` lists paraphrases
("Sci-Fi" -> "sci-fi", "science fiction", "sci fi"). The first form is the canonical one. Every
form reads as a modifier in front of a noun ("a sci-fi film", "more TV news"), so explicit
templates always follow ``{tag}`` with a noun. :func:`render` keeps the result grammatical: "a"
becomes "an" before a vowel sound, a noun the form already names is dropped ("a {tag} film" with
"film noir" -> "a film noir"; "{tag} news" with "news" -> "news"), and a form opening a sentence is
capitalised.

Splits. Everything is split by hand, fixed in this file (no random draw at import): every
explicit family has 11 training and 5 held-out evaluation templates per domain; every tag has 4
training and 2 held-out nuanced prompts of its own (multi-tag prompts count for each tag they
carry). No evaluation template or nuanced text is ever used in training. Training prompts use
every surface form; evaluation prompts use the canonical form only, so evaluation measures
generalisation to unseen *phrasings* of the request, not to unseen tag names.

Nuanced texts never contain a tag name or surface form of a tag they carry (checked by the tests,
case-insensitively, as whole words, plurals included).

Ordering is deterministic: template-major, then tag (in the order asked for), then surface form;
nuanced prompts by tag (in the order asked for), then as written here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
from collections.abc import Mapping, Sequence

from dpr_jax.errors import UserError

DOMAINS: tuple[str, ...] = ("ml-1m", "mind")
FAMILIES: tuple[str, ...] = ("positive", "negative", "nuanced")
SPLITS: tuple[str, ...] = ("train", "eval")
SLOT = "{tag}"

_POLARITY = {"positive": 1, "negative": -1, "nuanced": 1}


class PromptError(UserError, ValueError):
  """An unknown domain, family, split or tag (also a ValueError), or a malformed template."""


@dataclasses.dataclass(frozen=True)
class Prompt:
  """One prompt text with the tags it is about.

  Attributes:
    text: what the user types.
    tags: the tags the prompt is about; one for explicit templates, one or more for nuanced ones.
    polarity: +1 asks for the tags (positive, nuanced), -1 asks to avoid them (negative).
    family: "positive", "negative" or "nuanced".
    split: "train" or "eval".
  """

  text: str
  tags: tuple[str, ...]
  polarity: int
  family: str
  split: str


# ------------------------------------------------------------------------------------------ tags

_ML1M_TAGS: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
    "Western",
)

_MIND_TAGS: tuple[str, ...] = (
    "autos", "entertainment", "finance", "foodanddrink", "health", "kids", "lifestyle",
    "middleeast", "movies", "music", "news", "northamerica", "sports", "travel", "tv", "video",
    "weather",
)

# --------------------------------------------------------------------------------- surface forms

_ML1M_SURFACE: dict[str, tuple[str, ...]] = {
    "Action": ("action", "action-packed"),
    "Adventure": ("adventure", "epic adventure"),
    "Animation": ("animated", "animation"),
    "Children's": ("children's", "kids'", "family"),
    "Comedy": ("comedy", "funny"),
    "Crime": ("crime", "gangster"),
    "Documentary": ("documentary", "non-fiction"),
    "Drama": ("drama", "dramatic"),
    "Fantasy": ("fantasy", "sword-and-sorcery"),
    "Film-Noir": ("noir", "film noir"),
    "Horror": ("horror", "scary"),
    "Musical": ("musical", "song-and-dance"),
    "Mystery": ("mystery", "whodunit"),
    "Romance": ("romance", "romantic"),
    "Sci-Fi": ("sci-fi", "science fiction", "sci fi"),
    "Thriller": ("thriller", "suspense"),
    "War": ("war", "wartime"),
    "Western": ("western", "cowboy"),
}

_MIND_SURFACE: dict[str, tuple[str, ...]] = {
    "autos": ("auto", "car", "motoring"),
    "entertainment": ("entertainment", "showbiz", "celebrity"),
    "finance": ("finance", "financial", "money"),
    "foodanddrink": ("food and drink", "cooking", "food"),
    "health": ("health", "wellness", "medical"),
    "kids": ("kids'", "children's", "family"),
    "lifestyle": ("lifestyle", "style"),
    "middleeast": ("Middle East", "Middle Eastern", "Mideast"),
    "movies": ("movie", "film", "cinema"),
    "music": ("music", "pop music"),
    "news": ("news", "current affairs", "hard news"),
    "northamerica": ("North American", "North America", "US and Canada"),
    "sports": ("sports", "sporting"),
    "travel": ("travel", "vacation"),
    "tv": ("TV", "television"),
    "video": ("video", "viral video"),
    "weather": ("weather", "forecast"),
}

# ------------------------------------------------------------------------------------- templates
# Each family: 11 training templates, then 5 held-out evaluation templates. {tag} is always
# followed by a noun, so every surface form reads as a modifier.

_ML1M_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "positive": {
        "train": (
            "more {tag} movies, please",
            "I'm in the mood for a {tag} film tonight",
            "could you show me some {tag} movies?",
            "{tag} films tonight, please",
            "recommend me a good {tag} movie",
            "I've been really into {tag} films lately, give me more of those",
            "any good {tag} movies you'd suggest?",
            "put some {tag} films on my list",
            "I'd love to watch a {tag} movie this weekend",
            "show me {tag} movies",
            "feeling like a {tag} film right now",
        ),
        "eval": (
            "what {tag} movies should I watch next?",
            "Would you mind recommending a few {tag} films? Thanks!",
            "my friends are coming over and we want a {tag} movie",
            "lean more towards {tag} films from now on",
            "I could really go for a {tag} movie",
        ),
    },
    "negative": {
        "train": (
            "anything but a {tag} movie, please",
            "no {tag} films tonight",
            "I'm sick of {tag} movies",
            "skip the {tag} stuff",
            "please keep {tag} films out of my list",
            "not in the mood for a {tag} movie",
            "fewer {tag} films, please",
            "I've had enough of {tag} movies for a while",
            "don't recommend any {tag} films",
            "can you stop suggesting {tag} movies?",
            "I really don't like {tag} films",
        ),
        "eval": (
            "no more {tag} movies, thanks",
            "I'm not feeling {tag} films today, show me something else",
            "please leave out the {tag} movies",
            "I'd rather avoid {tag} films for now",
            "Honestly, I'm tired of all the {tag} movies you keep showing me.",
        ),
    },
}

_MIND_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "positive": {
        "train": (
            "more {tag} news, please",
            "show me more {tag} stories",
            "I want to read some {tag} articles today",
            "could you add some {tag} coverage to my feed?",
            "{tag} stories first, please",
            "I've been really interested in {tag} news lately",
            "give me the latest {tag} headlines",
            "any interesting {tag} articles today?",
            "I'd like a bit more {tag} content in my feed",
            "catch me up on {tag} news",
            "fill my feed with {tag} stories",
        ),
        "eval": (
            "what's new in {tag} news today?",
            "Could you show me a few more {tag} articles? Thanks.",
            "keep me posted with {tag} stories",
            "I'd love more {tag} coverage in my daily briefing",
            "bring on the {tag} headlines",
        ),
    },
    "negative": {
        "train": (
            "no {tag} news, please",
            "anything but {tag} stories, please",
            "skip the {tag} articles",
            "I'm sick of {tag} headlines",
            "please keep {tag} stories out of my feed",
            "fewer {tag} articles, please",
            "I don't care about {tag} news",
            "stop showing me {tag} stories",
            "not interested in {tag} coverage today",
            "I've had enough {tag} news for this week",
            "hide the {tag} stuff from my feed",
        ),
        "eval": (
            "no more {tag} stories, thanks",
            "can you leave out the {tag} articles today?",
            "I'd rather not read {tag} news right now",
            "I'm tired of seeing so much {tag} coverage",
            "Please don't put {tag} headlines in my feed anymore.",
        ),
    },
}

# -------------------------------------------------------------------------------------- nuanced
# Per tag: 4 training and 2 held-out texts. A plain string carries only the tag it is listed
# under; a (text, tags) pair carries every tag named (the one it is listed under included).

_Entry = str | tuple[str, tuple[str, ...]]

_ML1M_NUANCED: dict[str, dict[str, tuple[_Entry, ...]]] = {
    "Action": {
        "train": (
            "explosions, car chases and big fight scenes",
            "something fast and loud with lots of shootouts",
            "a movie where the hero takes on an army of bad guys single-handed",
            ("a Bond-style spy movie with stunts and gadgets", ("Action", "Thriller")),
        ),
        "eval": (
            "wall-to-wall stunts and punch-ups",
            "I want to see things blow up",
        ),
    },
    "Adventure": {
        "train": (
            "a treasure hunt in some far-off jungle",
            "heroes setting off on a long journey to faraway lands",
            ("something like Indiana Jones", ("Action", "Adventure")),
            "explorers, lost cities and a map with an X on it",
        ),
        "eval": (
            "a swashbuckling tale of pirates on the high seas",
            "a band of friends on an epic quest",
        ),
    },
    "Animation": {
        "train": (
            "hand-drawn cartoons",
            "something by Pixar",
            "stop-motion or claymation, like Wallace and Gromit",
            ("cartoons the little ones can watch", ("Animation", "Children's")),
        ),
        "eval": (
            "a classic Disney cartoon feature",
            "drawn characters instead of real actors",
        ),
    },
    "Children's": {
        "train": (
            "something the little ones can sit through",
            "a film that's safe for my six-year-old",
            "a G-rated movie for a Sunday afternoon with my nephews",
            "something to keep a room full of eight-year-olds happy",
        ),
        "eval": (
            "a gentle movie my daughter can watch with me",
            "something suitable for a school-age audience",
        ),
    },
    "Comedy": {
        "train": (
            "something that will make me laugh",
            "a light, silly movie to cheer me up",
            "I need a good laugh tonight",
            ("a cute rom-com for date night", ("Comedy", "Romance")),
        ),
        "eval": (
            "something hilarious, the dumber the better",
            "a film that will have us in stitches",
        ),
    },
    "Crime": {
        "train": (
            "mob bosses, heists and dirty cops",
            "a movie about a bank robbery gone wrong",
            "the mafia, drug lords, that sort of underworld story",
            ("a detective hunting down a serial killer", ("Crime", "Thriller")),
        ),
        "eval": (
            "a story about hitmen and crooked deals in the big city",
            "something like The Godfather",
        ),
    },
    "Documentary": {
        "train": (
            "real footage about real people, not actors",
            "something educational about nature and wildlife",
            "a film that investigates a true story through interviews",
            "I want to learn something real from a film tonight",
        ),
        "eval": (
            "a narrated behind-the-scenes look at real events",
            "a film that teaches me about history using archive footage",
        ),
    },
    "Drama": {
        "train": (
            "something serious and emotional",
            "a slow character study about a marriage falling apart",
            "a heavy, thought-provoking film that might make me cry",
            "a powerful story with great acting and no easy answers",
        ),
        "eval": (
            "an Oscar-bait tearjerker",
            "a moving story about ordinary people going through hard times",
        ),
    },
    "Fantasy": {
        "train": (
            "wizards, dragons and magic spells",
            "a journey through an enchanted kingdom",
            ("something like The Lord of the Rings", ("Adventure", "Fantasy")),
            "fairy tales with witches and talking animals",
        ),
        "eval": (
            "a magical world full of mythical creatures",
            "knights fighting a dragon to save the realm",
        ),
    },
    "Film-Noir": {
        "train": (
            "a black-and-white detective story full of shadows and cigarette smoke",
            "a hard-boiled private eye and a femme fatale",
            "something like The Maltese Falcon or Double Indemnity",
            "a moody 1940s picture about cynical detectives and shady dames",
        ),
        "eval": (
            "a cynical old Hollywood story with a doomed antihero",
            "rain-soaked streets, trench coats and double-crosses in black and white",
        ),
    },
    "Horror": {
        "train": (
            "something that will give me nightmares",
            "ghosts, haunted houses and jump scares",
            "a slasher with lots of blood",
            "I want to be terrified tonight",
        ),
        "eval": (
            "a creepy film to watch with the lights off",
            "zombies, demons, that kind of thing",
        ),
    },
    "Musical": {
        "train": (
            "a movie where people burst into song",
            "singing and dancing like an old Broadway show",
            "something like The Sound of Music or Grease",
            "big choreographed numbers and catchy show tunes",
        ),
        "eval": (
            "a film full of songs I can sing along to",
            "a Fred Astaire and Ginger Rogers picture",
        ),
    },
    "Mystery": {
        "train": (
            "a puzzle where I have to guess who did it",
            "a detective piecing together clues",
            "something like an Agatha Christie story",
            "a twisty plot with a secret I won't see coming",
        ),
        "eval": (
            "a locked-room puzzle with a brilliant sleuth",
            "a story that keeps me guessing until the final reveal",
        ),
    },
    "Romance": {
        "train": (
            "a sweet love story",
            "two people falling for each other",
            "a date-night movie about finding the one",
            "something swoony for Valentine's Day",
        ),
        "eval": (
            "a tale of star-crossed lovers",
            "a feel-good film about a couple who meet by chance",
        ),
    },
    "Sci-Fi": {
        "train": (
            "spaceships and aliens",
            "a story set in the distant future with robots",
            "time travel, parallel universes, that kind of thing",
            "something like Star Trek or Blade Runner",
        ),
        "eval": (
            "a journey to another planet",
            "a movie about artificial intelligence taking over the world",
        ),
    },
    "Thriller": {
        "train": (
            "something that keeps me on the edge of my seat",
            "a tense cat-and-mouse chase with a killer",
            "a nail-biter with lots of twists",
            "a Hitchcock-style film that makes my heart race",
        ),
        "eval": (
            "a gripping story where every minute counts",
            ("a race to stop a bomb before it goes off", ("Action", "Thriller")),
        ),
    },
    "War": {
        "train": (
            "soldiers storming the beaches of Normandy",
            "a story about a platoon in Vietnam",
            "trench fighting in 1917",
            "something about D-Day or the Battle of Britain",
        ),
        "eval": (
            "a battlefield epic about soldiers and sacrifice",
            "a film about a bomber crew flying missions over Germany",
        ),
    },
    "Western": {
        "train": (
            "gunslingers, saloons and showdowns at high noon",
            "something set in the Wild West",
            "a John Wayne movie out on the frontier",
            "outlaws and sheriffs on horseback",
        ),
        "eval": (
            "a lone rider drifting into a dusty frontier town",
            "a story about cattle drives and ranchers",
        ),
    },
}

_MIND_NUANCED: dict[str, dict[str, tuple[_Entry, ...]]] = {
    "autos": {
        "train": (
            "reviews of the newest SUVs and pickup trucks",
            "what Tesla, Ford and Toyota are launching next",
            "recalls and safety ratings for vehicles I might buy",
            "electric vehicles and charging stations",
        ),
        "eval": (
            "which new sedan gets the best mileage",
            "engines, horsepower and test drives",
        ),
    },
    "entertainment": {
        "train": (
            "gossip about famous people",
            "who wore what on the red carpet",
            "the latest Hollywood breakups and engagements",
            "what the stars are up to this week",
        ),
        "eval": (
            "juicy stories about the rich and famous",
            "award show highlights and star sightings",
        ),
    },
    "finance": {
        "train": (
            "how the stock market did today",
            "tips for saving for retirement",
            "interest rates, mortgages and inflation",
            "what's happening on Wall Street",
        ),
        "eval": (
            "advice on budgeting and paying off debt",
            "company earnings reports and investing ideas",
        ),
    },
    "foodanddrink": {
        "train": (
            "easy weeknight dinner recipes",
            "what to bake this weekend",
            "new restaurants and the best places to grab a burger",
            "wine and cocktail recommendations",
        ),
        "eval": (
            "quick recipes I can make in 20 minutes",
            "what's good to grill this summer",
        ),
    },
    "health": {
        "train": (
            "tips for sleeping better and lowering stress",
            "new research on heart disease and cancer",
            "workouts and diets that actually work",
            "what doctors say about the flu this season",
        ),
        "eval": (
            "how to lose weight and stay fit",
            "advice from nutritionists and physicians",
        ),
    },
    "kids": {
        "train": (
            "fun animal stories to share with my son",
            "things to do with toddlers on a rainy day",
            "stories my daughter would enjoy before bed",
            "cute fun facts for young readers",
        ),
        "eval": (
            "something my niece and nephew would find fun to read",
            "easy reads for elementary schoolers",
        ),
    },
    "lifestyle": {
        "train": (
            "home decorating ideas and relationship advice",
            "fashion trends and beauty tips",
            "how to organize my closet and declutter",
            "pets, parenting and everyday life hacks",
        ),
        "eval": (
            "pieces about dating, weddings and home life",
            "what the royals have been up to",
        ),
    },
    "middleeast": {
        "train": (
            "what's happening in Israel and the Palestinian territories",
            "the situation in Syria and Iraq",
            "Iran, Saudi Arabia and the Gulf states",
            "reports from Baghdad, Beirut and Tehran",
        ),
        "eval": (
            "the conflict in Yemen and the latest from Riyadh",
            "oil politics in the Persian Gulf",
        ),
    },
    "movies": {
        "train": (
            "box office numbers for this weekend",
            "trailers for upcoming blockbusters",
            "Oscar predictions and reviews of new releases",
            "what's playing at the theaters",
        ),
        "eval": (
            "which Marvel sequel is coming out next",
            "what critics think of the new Scorsese picture",
        ),
    },
    "music": {
        "train": (
            "new albums and concert tours",
            "what's topping the Billboard charts",
            "Taylor Swift, Beyonce and other singers",
            "Grammy winners and festival lineups",
        ),
        "eval": (
            "interviews with bands and songwriters",
            "the hottest new songs and rappers",
        ),
    },
    "news": {
        "train": (
            "what happened in Congress today",
            "the biggest headlines of the day",
            "politics, elections and the latest from the White House",
            "local crime reports and court cases",
        ),
        "eval": (
            "what's going on in the world right now",
            "breaking stories from Washington and around the world",
        ),
    },
    "northamerica": {
        "train": (
            "what's going on in Canada and Mexico",
            "stories from Toronto, Vancouver and Montreal",
            "the latest from across the continent, from Mexico City to Ottawa",
            "what's happening north and south of the border",
        ),
        "eval": (
            "updates from Ottawa and Mexico City",
            "Canadian politics and Mexican elections",
        ),
    },
    "sports": {
        "train": (
            "last night's NFL scores",
            "trade rumors and playoff predictions",
            "how my team did in the game yesterday",
            "highlights from the NBA and Major League Baseball",
        ),
        "eval": (
            "who won the big match this weekend",
            "college football rankings and transfer rumors",
        ),
    },
    "travel": {
        "train": (
            "ideas for my next getaway",
            "the best beaches to visit this summer",
            "cheap flights and hotel deals",
            "hidden gems to explore in Europe",
        ),
        "eval": (
            "places to go for a long weekend",
            "road trip routes and packing tips",
        ),
    },
    "tv": {
        "train": (
            "recaps of the shows I'm bingeing",
            "which series got renewed or cancelled",
            "what's new on Netflix and Hulu this week",
            "late-night talk show highlights",
        ),
        "eval": (
            "spoilers for last night's episode",
            "reality show gossip and sitcom reboots",
        ),
    },
    "video": {
        "train": (
            "short clips I can watch instead of reading",
            "something to watch, not read",
            "funny clips that everyone is sharing",
            "footage of the big moments of the day",
        ),
        "eval": (
            "quick clips to watch on my lunch break",
            "a few short clips to play on my phone",
        ),
    },
    "weather": {
        "train": (
            "will it rain this weekend",
            "storm warnings and hurricane tracking",
            "how cold it's going to get this week",
            "heat waves, snowstorms and tornado alerts",
        ),
        "eval": (
            "do I need an umbrella tomorrow",
            "when the next big snowfall is coming",
        ),
    },
}

# ------------------------------------------------------------------------------ combined requests
# "Ask for {pos}, exclude {neg}" in one sentence (issue: combined prompts). Evaluation only:
# nothing is trained on them -- DPR steers with the two parts that
# dpr_jax.prompts.combine.split_request finds, so every phrasing here is held out. Both slots
# are followed by a noun or stand where a modifier reads naturally.

_ML1M_COMBINED: tuple[str, ...] = (
    "a {pos} film, but no {neg} please",
    "{pos} movies tonight, nothing {neg}",
    "I want something {pos} without any {neg} scenes",
    "show me {pos} films and no {neg} stuff",
    "{pos} movies, yes; {neg} movies, no",
    "in the mood for a {pos} movie, just not a {neg} one",
    "any {pos} picks? skip the {neg} ones",
    "give me {pos} films but keep {neg} out of it",
)

_MIND_COMBINED: tuple[str, ...] = (
    "{pos} news please, but no {neg} stories",
    "more {pos} articles and nothing on {neg} topics",
    "show me {pos} stories without any {neg} coverage",
    "I'd like {pos} headlines; skip the {neg} ones",
    "{pos} coverage, yes; {neg} coverage, no",
    "catch me up on {pos} news, just not {neg} news",
    "any {pos} stories? leave out the {neg} pieces",
    "give me {pos} reads but keep {neg} out of it",
)

# ------------------------------------------------------------------------- frozen public tables


def _freeze_templates(
    table: dict[str, dict[str, tuple[str, ...]]]) -> Mapping[str, Mapping[str, tuple[str, ...]]]:
  return types.MappingProxyType(
      {family: types.MappingProxyType(dict(splits)) for family, splits in table.items()})


def _flatten_nuanced(
    table: dict[str, dict[str, tuple[_Entry, ...]]],
    tags: tuple[str, ...]) -> Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]]:
  """{tag: {split: entries}} -> {split: ((text, tags), ...)}, tags in the domain's tag order."""
  order = {t: i for i, t in enumerate(tags)}
  out: dict[str, list[tuple[str, tuple[str, ...]]]] = {s: [] for s in SPLITS}
  for primary, splits in table.items():
    for split in SPLITS:
      for entry in splits[split]:
        text, carried = (entry, (primary,)) if isinstance(entry, str) else entry
        unknown = [t for t in carried if t not in order]
        if primary not in carried or unknown:
          raise AssertionError(f"nuanced prompt {text!r} under {primary!r}: tags {carried}")
        out[split].append((text, tuple(sorted(carried, key=order.__getitem__))))
  return types.MappingProxyType({s: tuple(v) for s, v in out.items()})


_TAGS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {"ml-1m": _ML1M_TAGS, "mind": _MIND_TAGS})

SURFACE_FORMS: Mapping[str, Mapping[str, tuple[str, ...]]] = types.MappingProxyType({
    "ml-1m": types.MappingProxyType(dict(_ML1M_SURFACE)),
    "mind": types.MappingProxyType(dict(_MIND_SURFACE)),
})
"""``SURFACE_FORMS[domain][tag]``: paraphrases of the tag, canonical (evaluation) form first."""

TEMPLATES: Mapping[str, Mapping[str, Mapping[str, tuple[str, ...]]]] = types.MappingProxyType({
    "ml-1m": _freeze_templates(_ML1M_TEMPLATES),
    "mind": _freeze_templates(_MIND_TEMPLATES),
})
"""``TEMPLATES[domain][family][split]``: explicit templates ("positive"/"negative") with a {tag}."""

COMBINED: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {"ml-1m": _ML1M_COMBINED, "mind": _MIND_COMBINED})
"""``COMBINED[domain]``: held-out templates with a ``{pos}`` and a ``{neg}`` slot."""

NUANCED: Mapping[str, Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]]] = (
    types.MappingProxyType({
        "ml-1m": _flatten_nuanced(_ML1M_NUANCED, _ML1M_TAGS),
        "mind": _flatten_nuanced(_MIND_NUANCED, _MIND_TAGS),
    }))
"""``NUANCED[domain][split]``: hand-written ``(text, tags)`` pairs that never name their tags."""

# -------------------------------------------------------------------------------------- helpers


def _check_domain(domain: str) -> None:
  if domain not in DOMAINS:
    raise PromptError(f"unknown prompt domain {domain!r}; expected one of {', '.join(DOMAINS)}")


def _check_tags(domain: str, tags: Sequence[str]) -> tuple[str, ...]:
  """Validates ``tags`` against the domain and drops repeats, keeping the first occurrence."""
  if isinstance(tags, str):
    raise TypeError(f"tags must be a sequence of tag names, not the string {tags!r}")
  known = set(_TAGS[domain])
  unknown = [t for t in tags if t not in known]
  if unknown:
    raise PromptError(
        f"unknown {domain} tag(s) {', '.join(map(repr, unknown))}; "
        f"expected some of {', '.join(_TAGS[domain])}")
  return tuple(dict.fromkeys(tags))


_SAME_NOUN: tuple[frozenset[str], ...] = (
    frozenset({"film", "films", "movie", "movies", "cinema"}),
    frozenset({"news"}),
)
_ARTICLE = re.compile(r"(?:^|(?<=\s))([Aa])n? $")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)$")


def _vowel_sound(surface: str) -> bool:
  """Whether ``surface`` starts with a vowel sound ("an animated", but "a US and Canada")."""
  word = surface.split()[0]
  if word[:1] == "U" and word[:2].isupper():  # an acronym said "you-..."
    return False
  low = word.lower()
  if low.startswith(("uni", "use", "eu", "one")):
    return False
  return low[:1] in "aeiou" or low.startswith(("honest", "hour", "heir"))


def render(template: str, surface: str) -> str:
  """Fills the ``{tag}`` slot of ``template`` with ``surface`` and tidies the grammar.

  "a" before the slot becomes "an" before a vowel sound; a noun right after the slot that the
  surface form already names is dropped ("a {tag} film" + "film noir" -> "a film noir"); a surface
  form that opens a sentence is capitalised ("{tag} films tonight" -> "Sci-fi films tonight").

  Raises:
    PromptError: ``template`` does not hold exactly one ``{tag}`` and no other braces, or
      ``surface`` is blank or holds a brace.
  """
  if template.count(SLOT) != 1 or "{" in template.replace(SLOT, "") or "}" in template.replace(
      SLOT, ""):
    raise PromptError(f"template {template!r} must hold exactly one {SLOT} and no other braces")
  surface = surface.strip()
  if not surface or "{" in surface or "}" in surface:
    raise PromptError(f"bad surface form {surface!r} for template {template!r}")
  before, after = template.split(SLOT)
  words = set(re.findall(r"[a-z]+", surface.lower()))
  nxt = re.match(r" ([A-Za-z]+)\b", after)
  if nxt and any(nxt.group(1).lower() in g and words & g for g in _SAME_NOUN):
    after = after[nxt.end():]
  art = _ARTICLE.search(before)
  if art:
    a = art.group(1) + ("n" if _vowel_sound(surface) else "")
    before = before[:art.start()] + a + " "
  elif _SENTENCE_START.search(before):
    surface = surface[0].upper() + surface[1:]
  return before + surface + after


# ------------------------------------------------------------------------------------------- API


def tags_for(domain: str) -> tuple[str, ...]:
  """The tags of ``domain``: ML-1M genres as in movies.dat, or MIND news categories."""
  _check_domain(domain)
  return _TAGS[domain]


def prompts_for(domain: str, tags: Sequence[str], family: str, split: str) -> list[Prompt]:
  """The prompts of one family and split about ``tags``.

  Explicit families ("positive", "negative"): every template of the split x every tag (in the
  order given) x every surface form of the tag for "train", the canonical (first) form only for
  "eval". "nuanced": the hand-written prompts of the split that carry at least one of ``tags``,
  grouped by the first of ``tags`` they carry, each once. ``Prompt.tags`` is always a subset of
  ``tags``: a nuanced prompt keeps the carried tags that were asked for (``NUANCED`` has them
  all), so callers can index ``Prompt.tags`` with their own tag list.

  Raises:
    PromptError (a ValueError): unknown domain, family, split or tag (the message names it).
  """
  _check_domain(domain)
  if family not in FAMILIES:
    raise PromptError(f"unknown prompt family {family!r}; expected one of {', '.join(FAMILIES)}")
  if split not in SPLITS:
    raise PromptError(f"unknown prompt split {split!r}; expected one of {', '.join(SPLITS)}")
  wanted = _check_tags(domain, tags)
  polarity = _POLARITY[family]
  out: list[Prompt] = []
  if family == "nuanced":
    entries = NUANCED[domain][split]
    seen: set[str] = set()
    for tag in wanted:
      for text, carried in entries:
        if tag in carried and text not in seen:
          seen.add(text)
          kept = tuple(t for t in carried if t in wanted)
          out.append(Prompt(text, kept, polarity, family, split))
    return out
  for template in TEMPLATES[domain][family][split]:
    for tag in wanted:
      forms = SURFACE_FORMS[domain][tag]
      for surface in (forms if split == "train" else forms[:1]):
        out.append(Prompt(render(template, surface), (tag,), polarity, family, split))
  return out


def combined_prompt(domain: str, template: str, pos: str, neg: str) -> str:
  """``template`` of :data:`COMBINED` with the canonical forms of tags ``pos`` and ``neg``."""
  _check_domain(domain)
  _check_tags(domain, (pos, neg))
  if template.count("{pos}") != 1 or template.count("{neg}") != 1:
    raise PromptError(f"combined template {template!r} must hold one {{pos}} and one {{neg}}")
  hole = "\x00"
  first = render(template.replace("{pos}", SLOT).replace("{neg}", hole),
                 SURFACE_FORMS[domain][pos][0])
  return render(first.replace(hole, SLOT), SURFACE_FORMS[domain][neg][0])


def all_prompts(domain: str, tags: Sequence[str] | None = None) -> list[Prompt]:
  """Every prompt about ``tags`` (default: all tags of the domain), family-major then split."""
  chosen = tags_for(domain) if tags is None else tags
  return [p for family in FAMILIES for split in SPLITS
          for p in prompts_for(domain, chosen, family, split)]


def fingerprint(domain: str) -> str:
  """sha256 of the domain's templates, surface forms and nuanced prompts (for results files)."""
  _check_domain(domain)
  blob = json.dumps({
      "tags": _TAGS[domain],
      "surface_forms": {t: SURFACE_FORMS[domain][t] for t in _TAGS[domain]},
      "templates": {f: dict(s) for f, s in TEMPLATES[domain].items()},
      "nuanced": dict(NUANCED[domain]),
      "combined": COMBINED[domain],
  }, sort_keys=True, ensure_ascii=True)
  return hashlib.sha256(blob.encode("utf-8")).hexdigest()
