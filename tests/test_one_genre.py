"""A request that is one genre alone ("horror", "Westerns!") is read as wanting it
(dpr_jax.serve.one_genre)."""

import json
import pathlib

from dpr_jax.models.parser import Parse
from dpr_jax.prompts import generator
from dpr_jax.serve.one_genre import genre_alone, genre_forms, reading_genres_alone, words

SET = pathlib.Path(__file__).parents[1] / "dpr_jax" / "prompts" / "one_genre" / "requests.jsonl"


def test_a_genre_alone_as_people_type_it():
  forms = genre_forms("ml-1m", generator.DOMAIN_TAGS["ml-1m"])
  for text, tag in [("horror", "Horror"), ("HORROR!!!", "Horror"), ("Westerns", "Western"),
                    ("musicals?", "Musical"), ("mysteries", "Mystery"), ("sci-fi", "Sci-Fi"),
                    ("Sci Fi", "Sci-Fi"), ("film-noir", "Film-Noir"), ("children's", "Children's"),
                    ("comedy please", "Comedy"), ("dramas, pls", "Drama"), ("cartoons", "Animation"),
                    ("spaceships and aliens", "Sci-Fi"), ("comedy 👍", "Comedy"), ("  war.  ", "War")]:
    assert genre_alone(text, forms) == tag, text


def test_anything_more_than_a_genre_is_left_to_the_parsers():
  forms = genre_forms("ml-1m", generator.DOMAIN_TAGS["ml-1m"])
  for text in ["no horror", "horror no", "not westerns", "🚫 horror", "thrillers 👎", "please horror",
               "the war", "horror or comedy", "anything", "dinosaurs", "", "!!!", "more horror"]:
    assert genre_alone(text, forms) is None, text


def test_forms_come_from_the_tags_and_the_generator():
  forms = genre_forms("ml-1m", generator.DOMAIN_TAGS["ml-1m"])
  assert forms[words("Film-Noir")] == "Film-Noir" and forms["tearjerkers"] == "Drama"
  assert forms["something that gives me nightmares"] == "Horror"  # held-out forms too
  assert genre_forms("mind", ("sports",))["football"] == "sports"
  assert genre_forms("no-such-domain", ("Jazz", "Blues")) == {"jazz": "Jazz", "blues": "Blues"}


def test_the_sets_requests():
  """`dpr_jax/prompts/one_genre/` (written before this code): every genre alone read as its tag,
  no control read as one."""
  for line in SET.read_text().splitlines():
    r = json.loads(line)
    got = genre_alone(r["text"], genre_forms(r["domain"], generator.DOMAIN_TAGS[r["domain"]]))
    assert got == (r["want"][0] if r["kind"] == "genre" else None), r["text"]


def test_the_parse_is_replaced_only_for_a_genre_alone_read_otherwise():
  parses = {"horror": Parse((), ()), "westerns": Parse((), (("Western", 0.7),)),
            "comedy": Parse((("Comedy", 0.8),), ()), "no horror": Parse((), (("Horror", 0.9),))}
  read = reading_genres_alone(lambda texts: [parses[t] for t in texts],
                              genre_forms("ml-1m", generator.DOMAIN_TAGS["ml-1m"]))
  got = read(["horror", "westerns", "comedy", "no horror"])
  assert got[0] == Parse((("Horror", 1.0),), ()) and got[1] == Parse((("Western", 1.0),), ())
  assert got[2] is parses["comedy"] and got[3] is parses["no horror"]  # the parsers' own
