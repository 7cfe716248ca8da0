import numpy as np

from emotion_analyzer.framing import DEFAULT_FRAMING, Framing, crop_faces, framing_from_flags, framing_of_model, square_crop


def test_faces_cut_by_the_frame_edge_are_clamped():
    gray = np.zeros((100, 120), np.uint8)
    batch, used, boxes = crop_faces(gray, [(-20, 10, 50, 50), (100, 80, 40, 40), (500, 500, 10, 10)])
    assert batch.shape == (2, 48, 48, 1) and used == [0, 1]
    assert boxes == [(0, 10, 30, 50), (100, 80, 20, 20)]


def test_framing_widens_and_lowers_the_crop_and_pads_at_the_edge():
    box = (100, 100, 40, 40)
    assert Framing(0.0, 0.0).crop_box(box) == box
    assert Framing(0.25, 0.1).crop_box(box) == (90, 94, 60, 60)  # 10 px more each side, 4 px lower
    gray = np.arange(200 * 200, dtype=np.uint32).reshape(200, 200).astype(np.uint8)
    edge = square_crop(gray, (-10, 0, 30, 30))  # 10 columns outside the frame: the edge repeated
    assert edge.shape == (30, 30)
    np.testing.assert_array_equal(edge[:, :10], np.repeat(gray[:30, :1], 10, axis=1))
    np.testing.assert_array_equal(edge[:, 10:], gray[:30, :20])


def test_an_equalized_crop_spreads_a_dim_face_over_the_whole_range():
    from demo_media import FACE_IN_REGION, astronaut_face

    from emotion_analyzer.images import to_gray_uint8

    dim = (100 + to_gray_uint8(astronaut_face(150)) // 6).astype(np.uint8)  # a face lit flat: grey levels 100-142
    box = [FACE_IN_REGION]
    plain = crop_faces(dim, box, Framing(0.1, -0.05))[0][0, ..., 0]
    equalized = crop_faces(dim, box, Framing(0.1, -0.05, equalize=True))[0][0, ..., 0]
    assert plain.min() >= 100 and plain.max() <= 143
    assert equalized.min() < 10 and equalized.max() == 255
    # Equalizing keeps the order of grey levels: darker stays darker.
    order = np.argsort(plain, axis=None, kind="stable")
    assert np.all(np.diff(equalized.ravel()[order].astype(int)) >= 0)


def test_a_models_framing_fills_what_its_json_leaves_out_from_the_default():
    assert framing_of_model({}) == DEFAULT_FRAMING
    assert framing_of_model({"framing": {"margin": 0.2, "offset": 0.1}}) == Framing(0.2, 0.1, DEFAULT_FRAMING.equalize)
    assert framing_of_model({"framing": {"margin": 0.0, "offset": 0.0, "equalize": False}}) == Framing(0.0, 0.0)
    assert framing_from_flags(None, None, None) is None  # nothing asked: the model's JSON decides
    assert framing_from_flags(None, None, False) == Framing(DEFAULT_FRAMING.margin, DEFAULT_FRAMING.offset, False)
