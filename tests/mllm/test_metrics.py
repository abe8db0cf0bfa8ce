import pytest

from fedsim.mllm.metrics import EFOMetric, average_efo, efo


def test_efo_hand_table():
    up_b, up_a = {"color": 0.9, "count": 0.8}, {"color": 0.7, "count": 0.8}
    dn_b, dn_a = {"read": 0.1, "parity": 0.5}, {"read": 0.9, "parity": 0.7}
    r = efo(up_b, up_a, dn_b, dn_a)
    assert r.E == pytest.approx(50.0)  # mean of +80 and +20
    assert r.F == pytest.approx(-10.0)  # mean of -20 and 0
    assert r.O == pytest.approx(40.0)
    assert r.upstream_after == pytest.approx(75.0) and r.downstream_after == pytest.approx(80.0)
    assert r.avg == pytest.approx(77.5)


def test_untouched_model_gives_zero():
    t = {"a": 0.3, "b": 0.6}
    r = efo(t, t, t, t)
    assert r.E == 0 and r.F == 0 and r.O == 0


def test_mismatched_sets_raise():
    with pytest.raises(ValueError, match="disagree"):
        efo({"a": 1.0}, {"b": 1.0}, {"c": 0.0}, {"c": 1.0})


def test_average_over_clients_is_plain_mean():
    r1 = efo({"u": 1.0}, {"u": 0.8}, {"d": 0.0}, {"d": 0.6})
    r2 = efo({"u": 1.0}, {"u": 1.0}, {"d": 0.0}, {"d": 0.2})
    m = average_efo([r1, r2])
    assert m.E == pytest.approx(40.0) and m.F == pytest.approx(-10.0) and m.O == pytest.approx(30.0)


def test_metric_untouched_model_on_real_sets(tiny, up_data, down_data):
    metric = EFOMetric.from_families(up_data, down_data)
    before = metric.evaluate(tiny)
    assert set(before[0]) == set(up_data.families) and set(before[1]) == set(down_data.families)
    r = metric.compute(before, metric.evaluate(tiny))
    assert r.E == 0 and r.F == 0
