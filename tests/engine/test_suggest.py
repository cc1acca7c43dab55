from __future__ import annotations

from engine.suggest import closest, did_you_mean


def test_a_typo_names_the_option_meant_and_a_stranger_nothing() -> None:
    assert closest("trade_mx", ["trades", "trade_ma", "bars_1m"]) == "trade_ma"
    assert did_you_mean("bar_lenght", ["bar_length", "by"]) == " (did you mean 'bar_length'?)"
    assert closest("zzz", ["trades", "quotes"]) is None and did_you_mean("zzz", ["trades"]) == ""
    assert closest("x", []) is None
