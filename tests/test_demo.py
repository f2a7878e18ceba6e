"""`make demo` (python -m emolens.demo): the quick start's first command, on the shipped model."""

from __future__ import annotations

import pytest

pytest.importorskip("skimage")
pytest.importorskip("cv2")


def test_the_demo_labels_two_real_people_and_a_group(tmp_path, capsys):
    from emolens.demo import main
    from emolens.models import default_model_path

    if not default_model_path().exists():
        pytest.skip("the shipped model is not installed")
    assert main(["--output", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut.jpg", "grace_hopper.jpg", "group.jpg"]
    table = capsys.readouterr().out
    rows = [line.split() for line in table.splitlines() if line.split()[:1] in (["astronaut"], ["grace_hopper"], ["group"])]
    assert [r[0] for r in rows] == ["astronaut", "grace_hopper"] + ["group"] * 4  # every face found, one each and four
    assert "no face found" not in table
