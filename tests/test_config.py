"""ref.config: the Rounding enum and MacConfig's derived flags."""

import json

import pytest

import ref
from ref.config import MacConfig, Rounding, parse_mac


def test_rounding_is_a_string_enum():
    assert Rounding.SR_EAGER == "sr_eager"
    assert f"{Rounding.RN}" == "rn"
    assert ref.ROUNDINGS == ("rn", "rz", "sr_lazy", "sr_eager")
    assert json.dumps({"r": Rounding.RZ}) == '{"r": "rz"}'


@pytest.mark.parametrize(
    "mode, is_sr, grid, rand, extra",
    [("rn", False, "rn", 0, 1), ("rz", False, "rz", 0, 0), ("sr_lazy", True, "sr", 4, 4), ("sr_eager", True, "sr", 6, 4)],
)
def test_rounding_carries_its_definition(mode, is_sr, grid, rand, extra):
    m = Rounding(mode)
    r = 4 if is_sr else None
    assert (m.is_sr, m.grid_mode, m.rand_bits(r), m.extra_bits(r)) == (is_sr, grid, rand, extra)
    assert m.description
    cfg = MacConfig("e5m2", "e6m5", mode, r)
    assert cfg.rounding is m
    assert (cfg.is_sr, cfg.grid_mode, cfg.rand_bits, cfg.extra_bits) == (is_sr, grid, rand, extra)


def test_rounding_parse():
    assert Rounding.parse("sr") is Rounding.SR_LAZY
    assert Rounding.parse(Rounding.RN) is Rounding.RN
    with pytest.raises(ValueError, match="rounding must be one of"):
        Rounding.parse("sr_eagre")


def test_config_round_trips_and_messages():
    cfg = parse_mac("e5m2:e6m5:sr_eager:4")
    assert parse_mac(cfg.spec()) == cfg
    assert cfg.to_dict()["rounding"] == "sr_eager"
    assert cfg.replace(rounding="rn").rbits is None
    with pytest.raises(ValueError, match="'sr_lazy' needs rbits"):
        MacConfig("e5m2", "e6m5", "sr_lazy")
    with pytest.raises(ValueError, match="rounding must be one of"):
        MacConfig("e5m2", "e6m5", 3)
