"""The README's demo: real people changing expression, read as they change."""

import importlib.util
import tarfile

from PIL import Image


def demo_script(project_root):
    spec = importlib.util.spec_from_file_location("make_demo_gif", project_root / "docs" / "make_demo_gif.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_shows_its_people_read_neutral_then_happy_as_they_smile(tmp_path, project_root, london_archive):
    demo = demo_script(project_root)
    wanted = {f"/{kind}/{person}_{shot}.jpg" for person in demo.PEOPLE for kind, shot in (("neutral", "03"),
                                                                                        ("happy", "08"))}
    with tarfile.open(london_archive) as archive:
        members = [m for m in archive.getmembers() if any(m.name.endswith(name) for name in wanted)]
        archive.extractall(tmp_path, members=members, filter="data")
    london = next(tmp_path.rglob("neutral")).parent
    gif, example = tmp_path / "demo.gif", tmp_path / "example.png"

    shares = demo.main(["--london", str(london), "--out", str(gif), "--example", str(example), "--seconds", "4", "--fps", "10"])

    assert len(members) == 2 * len(demo.PEOPLE)
    with Image.open(gif) as animation:
        assert animation.n_frames == 4 * 10 and animation.size[0] == 600
    with Image.open(example) as still:
        assert still.size == (demo.PANEL * len(demo.PEOPLE), demo.PANEL)
    # The shipped model reads each person as the README's pictures show: neutral when neutral, happy
    # when smiling (a model that misreads them should come with other people in the demo).
    assert set(shares) == set(demo.PEOPLE)
    for person, (neutral, happy) in shares.items():
        assert neutral >= demo.WARN_BELOW and happy >= demo.WARN_BELOW, (person, neutral, happy)
    assert not list(tmp_path.glob("*.tmp.*"))
