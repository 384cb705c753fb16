"""Label-map edits: each moves area and centroid as asked, bad draws are redrawn, seeds repeat."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from synthmed.errors import SynthmedError
from synthmed.sampling.masks import EditSpec, apply_params, edit_mask, parse_edits


def _disc(size=64, cy=32, cx=32, r=6) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def _centroid(m):
    return np.array(ndimage.center_of_mass(m > 0))


def test_translate_moves_the_centroid_by_whole_pixels_and_keeps_the_area():
    m = _disc()
    out, lost = apply_params(m, {"dx": 7, "dy": -5}, EditSpec(translate=(-1, 1)))
    assert lost == 0 and out.sum() == m.sum()
    assert np.allclose(_centroid(out) - _centroid(m), [-5, 7])


def test_scale_multiplies_the_area_by_s_squared_about_the_centroid():
    m = _disc(r=8)
    out, _ = apply_params(m, {"scale": 1.5}, EditSpec(scale=(1.5, 1.5)))
    assert out.sum() / m.sum() == pytest.approx(2.25, rel=0.08)
    assert np.allclose(_centroid(out), _centroid(m), atol=0.6)


def test_rotate_keeps_area_and_centroid_and_turns_an_ellipse():
    m = np.zeros((64, 64), np.uint8)
    m[28:36, 16:48] = 1  # wide bar
    out, _ = apply_params(m, {"rotate_deg": 90.0}, EditSpec(rotate=(90, 90)))
    assert out.sum() == pytest.approx(m.sum(), rel=0.05)
    assert np.allclose(_centroid(out), _centroid(m), atol=0.6)
    ys, xs = np.nonzero(out)
    assert np.ptp(ys) > np.ptp(xs)  # now tall


def test_flip_mirrors_and_elastic_deforms_but_keeps_the_lesion_near():
    m = _disc(cx=20)
    out, _ = apply_params(m, {"flip_h": True}, EditSpec(flip="h"))
    assert np.allclose(_centroid(out), [32, 63 - 20])
    warped, lost = apply_params(m, {"elastic_seed": 3}, EditSpec(elastic=(3.0, 4.0)))
    assert lost == 0 and not np.array_equal(warped, m)
    assert abs(int(warped.sum()) - int(m.sum())) < 0.5 * m.sum()
    assert np.linalg.norm(_centroid(warped) - _centroid(m)) < 3


def test_edits_pushing_the_lesion_out_are_rejected_and_redrawn():
    m = _disc(cx=50)  # near the right edge: half of the shifts push it out
    spec = parse_edits(["translate=0.3"])
    res = edit_mask(m, spec, np.random.default_rng(0))
    counts = [edit_mask(m, spec, np.random.default_rng(s)).rejected for s in range(20)]
    assert sum(counts) > 0, "some draws must have been rejected"
    assert res.mask.sum() == m.sum() and apply_params(m, res.params, spec)[1] == 0
    with pytest.raises(SynthmedError, match="no acceptable edit"):
        edit_mask(m, parse_edits(["translate=0.9:1.0"]), np.random.default_rng(0))


def test_outside_the_organ_is_rejected():
    m = _disc(cy=32, cx=32, r=4)
    organ = _disc(r=14).astype(bool)
    for s in range(10):
        res = edit_mask(m, parse_edits(["translate=0.4"]), np.random.default_rng(s), organ=organ)
        assert (res.mask > 0)[organ].sum() >= 0.9 * res.mask.sum()


def test_zero_area_is_rejected():
    m = np.zeros((64, 64), np.uint8)
    m[30, 30] = 1  # one pixel: shrinking it to nothing must be redrawn
    res = edit_mask(m, parse_edits(["scale=0.1:1.0"]), np.random.default_rng(4))
    assert res.mask.sum() > 0


def test_same_seed_same_edit_and_empty_masks_pass_through():
    m = _disc()
    spec = parse_edits(["translate=0.2", "rotate=45", "scale=0.8:1.2", "flip=hv", "elastic=2"])
    a = edit_mask(m, spec, np.random.default_rng(11))
    b = edit_mask(m, spec, np.random.default_rng(11))
    c = edit_mask(m, spec, np.random.default_rng(12))
    assert a.params == b.params and np.array_equal(a.mask, b.mask)
    assert a.params != c.params
    empty = edit_mask(np.zeros((64, 64), np.uint8), spec, np.random.default_rng(0))
    assert empty.params == {} and empty.mask.sum() == 0


@pytest.mark.parametrize("bad,msg", [("spin=3", "unknown edit"), ("scale=2:1", "LO <= HI"),
                                     ("flip=x", "flip takes"), ("rotate=a", "a number")])
def test_bad_edits_are_one_line_errors(bad, msg):
    with pytest.raises(SynthmedError, match=msg):
        parse_edits([bad])


def test_a_lesion_already_outside_the_estimated_organ_need_only_stay_as_far_inside():
    m = _disc(cy=32, cx=32, r=4)
    organ = np.zeros((64, 64), bool)
    organ[:, :32] = True  # about half of the lesion is "inside"
    res = edit_mask(m, parse_edits(["rotate=10"]), np.random.default_rng(0), organ=organ)
    frac = (res.mask > 0)[organ].sum() / res.mask.sum()
    assert frac >= (m > 0)[organ].mean() - 1e-9


def test_pair_generation_keeps_a_cramped_source_unedited_instead_of_failing():
    m = _disc(cx=50)
    res = edit_mask(m, parse_edits(["translate=0.9:1.0"]), np.random.default_rng(0),
                    strict=False)
    assert res.params == {"unedited": True} and np.array_equal(res.mask, m)
    assert res.rejected == 100
