"""An avoid, then a wish, said wish first (dpr_jax.serve.avoid_first)."""

import pytest

from dpr_jax.serve.avoid_first import wish_first


@pytest.mark.parametrize("typed, read", [
    ("no westerns, a comedy would be great", "a comedy would be great but no westerns"),
    ("i hate romance but i love action", "i love action but i hate romance"),
    ("avoid horror and give me a cartoon", "give me a cartoon but avoid horror"),
    ("no dramas at all. action.", "action but no dramas at all"),
    ("no horror, a comedy, no romance", "a comedy but no horror, no romance"),
])
def test_an_avoid_then_a_wish_is_said_wish_first(typed, read):
  assert wish_first(typed) == read


@pytest.mark.parametrize("typed", [
    "comedies, yes; romances, no", "westerns? no thanks", "no horror, no gore", "no horror",
    "no romance, please", "not horror, thanks", "a comedy, no romance", "i want action but no war",
    "I'm tired of seeing so much travel coverage", "no horror and thrillers",
])
def test_other_requests_stay_as_typed(typed):
  assert wish_first(typed) == typed
