import pytest

from shared import signing
from shared.layout import fit_geometry, slot_center, slot_of_position
from shared.settings import Grid

GRID = Grid(columns=3, cell_width=400, cell_height=300, padding=10, origin_x=-100, origin_y=50)


@pytest.mark.parametrize("slot,expected", [(0, (100, 200)), (1, (500, 200)), (2, (900, 200)), (3, (100, 500)), (7, (500, 800))])
def test_slots_fill_rows_left_to_right(slot, expected):
    assert slot_center(GRID, slot) == expected
    assert slot_of_position(GRID, *expected) == slot


def test_distinct_slots_never_overlap():
    centres = [slot_center(GRID, s) for s in range(30)]
    for i, (x1, y1) in enumerate(centres):
        for x2, y2 in centres[i + 1 :]:
            assert abs(x1 - x2) >= GRID.cell_width or abs(y1 - y2) >= GRID.cell_height


@pytest.mark.parametrize(
    "w,h,expected",
    [(1600, 900, {"width": 380.0}), (900, 1600, {"height": 280.0}), (380, 280, {"width": 380.0}), (1000, 740, {"height": 280.0})],
)
def test_fit_sets_width_or_height_never_both(w, h, expected):
    geometry = fit_geometry(GRID, w, h)
    assert geometry == expected and len(geometry) == 1


def test_slot_of_position_rejects_foreign_positions():
    assert slot_of_position(GRID, 101, 200) is None
    assert slot_of_position(GRID, -300, 200) is None


def test_signed_path_roundtrip_and_refusals():
    path = signing.sign_path("sub dir/ünï #1?.png", "s" * 32, ttl=60, now=1000)
    token = path.split("/i/")[1].split("?")[0]
    query = dict(p.split("=") for p in path.split("?")[1].split("&"))
    assert signing.verify(token, query["exp"], query["sig"], "s" * 32, now=1000) == "sub dir/ünï #1?.png"
    with pytest.raises(signing.SignatureError, match="expired"):
        signing.verify(token, query["exp"], query["sig"], "s" * 32, now=1061)
    with pytest.raises(signing.SignatureError, match="bad-signature"):
        signing.verify(token, str(int(query["exp"]) + 1000), query["sig"], "s" * 32, now=1000)
    with pytest.raises(signing.SignatureError, match="bad-signature"):
        signing.verify(signing.encode_name("../etc/passwd"), query["exp"], query["sig"], "s" * 32, now=1000)
    with pytest.raises(signing.SignatureError, match="bad-signature"):
        signing.verify(token, query["exp"], query["sig"], "another-secret-xx", now=1000)
    with pytest.raises(signing.SignatureError, match="malformed"):
        signing.verify(token, "-5", query["sig"], "s" * 32, now=1000)
