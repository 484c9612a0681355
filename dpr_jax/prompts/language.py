"""Is a request written in English? A check before the request parser reads it.

The text encoder (all-MiniLM-L6-v2) and the request parser trained on its token states read
English only. A request in another language is outside what they know, and the parser's
reading of it can be anything -- "keine Horrorfilme bitte" read as *want* Horror because the
genre word is spelled as in English and the German negation is not. Issue 16 asks that such a
request gets the unprompted list and a note, never a silently inverted list; this module tells
the serving reader (``dpr_jax.serve.recommender.Recommender.read``) when to give it.

It decides no stance: it only says "this is not English", from two signals a person would use.

* **Script.** When most letters are outside the Latin alphabet (Cyrillic, Greek, Arabic, CJK,
  Devanagari, ...), the request is in that script's language.
* **Function words.** Per language, a short list of its most common small words (articles,
  prepositions, pronouns, negations, "please", "tonight", "I want") and of the words a request
  to a recommender uses ("films", "news", "comedy"), written without any word that is also an
  English word ("die", "war", "will", "con", "per", "solo", "film", "sport", "terror" are left
  out), matched without accents (people type "pelicula" as often as "película"). A request is
  another language's when at least two of its words are on that language's list and more of
  them than on the English list -- or, for a request of one or two words, one such word of four
  letters or more and no English one ("actionfilme bitte"). Words of one letter count for no list.

English requests with loanwords ("a film noir please", "no gore por favor", "de niro gangster
movies", "something like Amélie") stay English: one foreign word is never enough beside an
English one. ``tests/test_language.py`` checks that no English request the project has (both
catalogues' everyday sets, the generator's requests, the templates) is flagged;
``dpr_jax/prompts/languages/requests.jsonl`` is the set of requests in other languages it was
measured on (``reports/languages_cpu_2026-12-07/``).
"""

from __future__ import annotations

import re
import unicodedata

# The script of a letter is the first word of its Unicode name ("CYRILLIC SMALL LETTER A").
_SCRIPT_NAMES = {"CJK": "Chinese or Japanese", "HIRAGANA": "Japanese", "KATAKANA": "Japanese",
                 "HANGUL": "Korean", "CYRILLIC": "a Cyrillic-script language",
                 "GREEK": "Greek", "ARABIC": "Arabic", "HEBREW": "Hebrew", "THAI": "Thai",
                 "DEVANAGARI": "Hindi or another Devanagari-script language"}

ENGLISH = """
the an and or but no not nor nothing none something any anything everything me my mine
you your we our us it its is are was be been am do does don doesn didn won wouldn can could
would should will shall let lets please pls plz thanks tonight today tomorrow now again
movie movies film films flick flicks show shows series watch watching see seen news story
stories article articles read want wanna need like love hate more less without with of for
to in on at about from by into just only stuff thing things kind sort type good great best
give get have got this that these those what which who how why when where maybe really too
very so some much many fun funny scary sad kids kid lol yes yeah okay ok hey up out off
"""

# Common words of other languages that are not English words (matched accent-free; a word that
# is also an English word -- "die", "war", "van", "men", "pour", "polar" -- is left out).
OTHER = {
    "Spanish": """
        de los las una unos unas del que quiero quieres quiere algo nada sin pero para por muy
        mas mucho mucha hoy esta este esto noche pelicula peliculas ver odio gusta gustan
        encanta encantan ni tampoco nunca tambien noticias deportes politica salud ninos
        comedia accion miedo guerra ciencia ficcion dibujos animados musicales romantica
        romanticas romantico cursi bueno buena hasta ahora otra otro usted
        """,
    "French": """
        de les des du une je veux voudrais pas rien sans avec mais ce cette soir aujourd hui
        quelque chose tres trop bien svp il vous plait aime surtout drole enfants comedie
        guerre nouvelles politique recettes triste moi nous est sont qui ou autre musicale ne
        """,
    "German": """
        keine kein keinen keiner bitte ich einen eine einer einem nicht ohne mit und oder aber
        heute abend etwas fuer der das mir mich zeig zeige moechte mochte gerne gern bloss
        lustiges lustig kinder krieg komoedie komodie nachrichten ueber reisen sehen guten gute
        viel sind auch nur noch schon jetzt mal doch filme promis wir ist
        """,
    "Portuguese": """
        de nao quero uma filmes filme sem hoje nada por acao comedia ver desenhos criancas para
        os com muito mais noticias futebol politica faroeste voce gosto algo esta obrigado
        obrigada
        """,
    "Italian": """
        niente stasera voglio una commedia azione senza romanticismo qualcosa di fantascienza
        favore guerra grazie bel bello notizie politica non il gli della delle che mi piace
        piacciono oggi sera molto piu anche bambini nessun nessuna
        """,
    "Dutch": """
        geen vanavond ik wil een komedie zien iets maar romantiek graag niet het voor
        alsjeblieft vandaag nieuws kinderen oorlog actie leuk leuke
        """,
    "Swedish": """
        ingen inga skrack kvall ikvall jag vill komedi inte och nyheter nagot krig
        """,
    "Danish or Norwegian": """
        ikke jeg vil gerne noget nyheder krig idag
        """,
    "Turkish": """
        istemiyorum istiyorum filmi korku komedi lutfen bir ve degil bu aksam bugun haber
        haberleri yok
        """,
    "Polish": """
        bez horrorow prosze chce obejrzec komedie nie dla dzieci dzis wieczorem jakis wiadomosci
        polityki polityka
        """,
    "Czech": """
        chci nechci prosim zadne zadny dnes vecer nebo deti zpravy
        """,
    "Romanian": """
        vreau fara rog filme copii stiri azi seara
        """,
    "Indonesian or Malay": """
        tidak mau saya tolong berita hari malam ini anak
        """,
    "Finnish": """
        ei haluan kiitos elokuva elokuvia tanaan illalla uutisia
        """,
    "Hungarian": """
        nem kerek szeretnek vigjatek este hirek
        """,
}


def _strip_accents(text: str) -> str:
  text = text.replace("ß", "ss").replace("ł", "l").replace("ı", "i")
  return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _words(spec: str) -> frozenset[str]:
  return frozenset(_strip_accents(w) for w in spec.split())


_ENGLISH = _words(ENGLISH)
_OTHER = {lang: _words(spec) - _ENGLISH for lang, spec in OTHER.items()}


def _script(letter: str) -> str:
  name = unicodedata.name(letter, "")
  return name.split(" ")[0] if name else "UNKNOWN"


def other_language(text: str) -> str | None:
  """The language ``text`` seems to be written in when it is not English, else None.

  None also when there is nothing to tell from (no letters: emoji, digits). A name is a
  language ("German"), a group of them ("Danish or Norwegian"), or "another language" when two
  lists score alike.
  """
  letters = [c for c in text if c.isalpha()]
  if not letters:
    return None
  scripts: dict[str, int] = {}
  for c in letters:
    s = _script(c)
    scripts[s] = scripts.get(s, 0) + 1
  latin = scripts.get("LATIN", 0)
  if latin * 2 < len(letters):
    top = max(scripts, key=scripts.get)
    return _SCRIPT_NAMES.get(top, f"a language written in {top.title()} script")
  words = [w for w in re.findall(r"[^\W\d_]+", _strip_accents(text.lower())) if len(w) > 1]
  if not words:
    return None
  english = sum(w in _ENGLISH for w in words)
  hits = {lang: sum(w in vocab for w in words) for lang, vocab in _OTHER.items()}
  best = max(hits.values())
  # One or two words: one word of four letters or more on a list, and no English word.
  short = len(words) <= 2 and english == 0 and any(
      len(w) >= 4 and any(w in vocab for vocab in _OTHER.values()) for w in words)
  if not short and (best < 2 or best <= english):
    return None
  leaders = [lang for lang, n in hits.items() if n == best]
  return leaders[0] if len(leaders) == 1 else "another language"
