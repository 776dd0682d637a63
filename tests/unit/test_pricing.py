from bot.model import EditParams, ImageSize, usd
from bot.pricing import billed_megapixels, expected_output_size, quote

MP = 1024 * 1024
PRICE = 50_000  # $0.05


def price_of(*sizes: tuple[int, int]) -> int:
    *inputs, output = sizes
    return quote(inputs, output, price_per_megapixel=PRICE, unit=MP).micros


def test_one_megapixel_output_costs_five_cents() -> None:
    assert billed_megapixels(1024, 1024, MP) == 1
    assert usd(quote([], (1024, 1024), price_per_megapixel=PRICE, unit=MP).micros) == "$0.05"


def test_full_hd_rounds_up_to_two_megapixels() -> None:
    assert billed_megapixels(1920, 1080, MP) == 2
    assert usd(quote([], (1920, 1080), price_per_megapixel=PRICE, unit=MP).micros) == "$0.10"


def test_small_image_still_costs_one_megapixel() -> None:
    assert usd(quote([], (512, 512), price_per_megapixel=PRICE, unit=MP).micros) == "$0.05"


def test_multi_input_job_rounds_each_image_separately() -> None:
    # Two 0.3 MP inputs are 2 billed megapixels, not 1; a 1920x1080 output is 2 more.
    q = quote([(640, 480), (640, 480)], (1920, 1080), price_per_megapixel=PRICE, unit=MP)
    assert q.input_megapixels == (1, 1)
    assert q.output_megapixels == 2
    assert q.micros == 4 * PRICE
    assert price_of((1024, 1024), (1025, 1024), (1024, 1024)) == (1 + 2 + 1) * PRICE


def test_price_and_unit_are_parameters() -> None:
    assert quote([], (1000, 1000), price_per_megapixel=30_000, unit=1_000_000).micros == 30_000


def test_auto_size_follows_first_input_capped_by_max_output() -> None:
    auto = EditParams(prompt="x")
    assert expected_output_size(auto, [(800, 600)], max_output_megapixels=4, unit=MP) == (800, 600)
    w, h = expected_output_size(auto, [(8000, 4000)], max_output_megapixels=1, unit=MP)
    assert w * h <= MP
    assert abs(w / h - 2) < 0.01


def test_explicit_size_is_used_for_the_estimate() -> None:
    p = EditParams(prompt="x", image_size=ImageSize(preset="landscape_16_9"))
    assert expected_output_size(p, [(100, 100)], max_output_megapixels=4, unit=MP) == (1024, 576)
    custom = EditParams(prompt="x", image_size=ImageSize(preset=None, width=1920, height=1080))
    assert expected_output_size(custom, [], max_output_megapixels=4, unit=MP) == (1920, 1080)


def test_price_list_estimates_like_quote_and_expected_output_size() -> None:
    from bot.pricing import PriceList

    prices = PriceList(price_per_megapixel=PRICE, unit=MP, max_output_megapixels=1.0)
    auto = EditParams(prompt="x")
    assert (
        prices.estimate(auto, [(8000, 4000)]).micros
        == quote(
            [(8000, 4000)],
            expected_output_size(auto, [(8000, 4000)], max_output_megapixels=1.0, unit=MP),
            price_per_megapixel=PRICE,
            unit=MP,
        ).micros
    )
    assert prices.quote([(1024, 1024)], (1920, 1080)).micros == 3 * PRICE
