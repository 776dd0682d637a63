"""Refusals with values, image rejections and parameter bounds read in the member's language.

Each says what the English says, with the amounts and names filled in for the reader's locale;
every message the image checks can produce is a catalogue entry (else it would stay English).
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot import admin_limits
from bot.admin_limits import LimitControls, parse_money
from bot.errors import ImageRejected, InvalidParameter, UserError
from bot.i18n import ENGLISH, Text, catalogue_text, format_money
from bot.image_formats import check_size, not_an_image
from bot.images import ImageLimits, normalize_image
from bot.params import ParamLimits, parse_edit_params
from cogs.errors import refusal_text


def refusal(call: object, *args: object) -> UserError:
    with pytest.raises(UserError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_a_limit_refusal_names_the_limit_in_french() -> None:
    error = refusal(LimitControls._check_value, "user_max_queued", 0)
    assert (
        error.message == "max queued jobs per member must be at least 1; block the member instead."
    )
    assert refusal_text(error, "fr") == (
        "« tâches en attente max. par membre » doit valoir au moins 1 ; bloquez plutôt le membre."
    )


def test_a_credit_refusal_shows_the_amounts_in_french_money() -> None:
    error = admin_limits._credit_refusal(have=2_000_000, bound=5_000_000)
    assert error.message == (
        "That member already has $2.00 of credit this month; the bot's owner allows at most "
        "$5.00 of credit per member per month, so grant $3.00 or less."
    )
    have, bound, room = (format_money(m, "fr") for m in (2_000_000, 5_000_000, 3_000_000))
    assert refusal_text(error, "fr") == (
        f"Ce membre a déjà {have} de crédit ce mois-ci ; le propriétaire du bot autorise au plus "
        f"{bound} de crédit par membre et par mois : accordez donc {room} ou moins."
    )
    assert error.remaining == 3_000_000


def test_a_typo_in_an_amount_is_refused_in_german() -> None:
    error = refusal(parse_money, "abc")
    assert refusal_text(error, "de") == "'abc' ist kein Betrag; gib Dollar an, etwa 1.50."


def test_an_image_rejection_with_values_is_french() -> None:
    with pytest.raises(ImageRejected) as caught:
        check_size("big.png", 30 * 1024 * 1024, 25 * 1024 * 1024)
    assert str(caught.value) == (
        "big.png: the file is 30 MB, larger than the 25 MB limit. Attach a smaller image."
    )
    assert refusal_text(caught.value, "fr") == (
        "big.png : le fichier fait 30 Mo, au-delà de la limite de 25 Mo. "
        "Joignez une image plus petite."
    )


def test_a_pdf_is_named_and_advised_in_french() -> None:
    with pytest.raises(ImageRejected) as caught:
        normalize_image(b"%PDF-1.7\n" + b"0" * 100, "scan.pdf", ImageLimits())
    assert caught.value.reason == (
        "not an image (looks like a PDF). Export the page as PNG or JPEG and attach that."
    )
    assert refusal_text(caught.value, "fr") == (
        "scan.pdf : ce n'est pas une image (cela ressemble à un PDF). "
        "Exportez la page en PNG ou JPEG et joignez ce fichier."
    )


def test_too_many_pixels_is_japanese() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (300, 200)).save(buf, "PNG")
    with pytest.raises(ImageRejected) as caught:
        normalize_image(buf.getvalue(), "wide.png", ImageLimits(max_pixels=10_000))
    assert refusal_text(caught.value, "ja") == (
        "wide.png\uff1aピクセル数が多すぎます。300x200 は 0.06 MP で、上限は 0.01 MP です。"
        "サイズを縮小してもう一度お試しください。"
    )


def test_a_parameter_bound_is_spanish() -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_edit_params(prompt="sunset", num_images=1, limits=ParamLimits(), steps="99")
    assert caught.value.allowed == "2 to 50"
    assert refusal_text(caught.value, "es").endswith("de 2 a 50.")


def english_msgids() -> set[str]:
    return {
        line[len('msgid "') : -1].replace('\\"', '"')
        for line in catalogue_text(ENGLISH).splitlines()
        if line.startswith('msgid "')
    }


def texts(text: Text) -> list[str]:
    nested = [t for v in text.params.values() if isinstance(v, Text) for t in texts(v)]
    return [text.msgid, *nested]


SAMPLES = [
    b"",
    b"%PDF-1.4",
    b"\x00\x00\x00\x18ftypmp42",
    b"\x00\x00\x00\x18ftypqt  ",
    b"\x00\x00\x00\x08moov",
    b"\x1a\x45\xdf\xa3",
    b"RIFF\x00\x00\x00\x00AVI ",
    b"8BPS",
    b"\xff\x0a",
    b"PK\x03\x04",
    b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    b"<!DOCTYPE html><html>",
    b"hello",
    b"\x89PNG\r\n\x1a\nbroken",
    b"\x01\x02\x03\x00\x00",
]


@pytest.mark.parametrize("data", SAMPLES)
def test_every_image_reason_is_a_catalogue_entry(data: bytes) -> None:
    """A reason (or a part of one) missing from the catalogue would stay English everywhere."""
    assert set(texts(not_an_image(data))) <= english_msgids()
