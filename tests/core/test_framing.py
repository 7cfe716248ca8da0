import cv2
import numpy as np
import pytest

from emotion_analyzer.core.framing import (crop_faces, DEFAULT_FRAMINGS, Framing,
                                           framings_of_model, square_crop)


def test_faces_cut_by_the_frame_edge_are_clamped():
    gray = np.zeros((100, 120), np.uint8)
    crops = crop_faces(gray, [(-20, 10, 50, 50), (100, 80, 40, 40), (500, 500, 10, 10)])
    assert crops.pixels.shape == (2, 48, 48, 1) and crops.used == [0, 1] and len(crops) == 2
    assert crops.boxes == [(0, 10, 30, 50), (100, 80, 20, 20)]


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

    from emotion_analyzer.core.images import to_gray_uint8

    dim = (100 + to_gray_uint8(astronaut_face(150)) // 6).astype(np.uint8)  # a face lit flat: grey levels 100-142
    box = [FACE_IN_REGION]
    plain = crop_faces(dim, box, Framing(0.1, -0.05)).pixels[0, ..., 0]
    equalized = crop_faces(dim, box, Framing(0.1, -0.05, equalize=True)).pixels[0, ..., 0]
    assert plain.min() >= 100 and plain.max() <= 143
    assert equalized.min() < 10 and equalized.max() == 255
    # Equalizing keeps the order of grey levels: darker stays darker.
    order = np.argsort(plain, axis=None, kind="stable")
    assert np.all(np.diff(equalized.ravel()[order].astype(int)) >= 0)


def test_a_models_framings_fill_what_its_json_leaves_out_from_the_defaults():
    assert framings_of_model({}) == DEFAULT_FRAMINGS
    older = framings_of_model({"framing": {"margin": 0.2, "offset": 0.1}})  # before MTCNN: Haar's alone
    assert older == {"haar": Framing(0.2, 0.1), "mtcnn": DEFAULT_FRAMINGS["mtcnn"]}
    recorded = framings_of_model({"framings": {"haar": {"margin": 0.0, "offset": 0.0, "equalize": False},
                                               "mtcnn": {"margin": 0.3}}})
    assert recorded["haar"] == Framing(0.0, 0.0) and recorded["mtcnn"].margin == 0.3


def test_faces_are_equalized_exactly_when_the_model_reads_them_so():
    from emotion_analyzer.core.model import input_contract

    # One fact, the model's input record, decides for every detector, over what older framings said.
    for equalized in (True, False):
        info = {"input": input_contract(equalized), "framings": {"haar": {"margin": 0.2, "offset": 0.0,
                                                                          "equalize": not equalized}}}
        assert {framing.equalize for framing in framings_of_model(info).values()} == {equalized}
    # A model saved before the record said it in its framings (the shipped model of 2026-11-30) or its recipe.
    assert framings_of_model({"framings": {"haar": {"margin": 0.2, "offset": -0.05, "equalize": True}}})["mtcnn"].equalize
    assert framings_of_model({"recipe": {"equalize": True}})["haar"].equalize
    assert not framings_of_model({"recipe": {"equalize": False}})["haar"].equalize


def test_a_new_model_is_framed_as_the_shipped_one():
    import json

    from emotion_analyzer import config
    from emotion_analyzer.core.framing import framings_for_json

    shipped = json.loads(config.model_info_path(config.DEFAULT_MODEL_PATH).read_text())
    assert framings_for_json() == shipped["framings"]
    assert shipped["input"]["equalized"] and framings_of_model(shipped) == {
        kind: Framing(f["margin"], f["offset"], equalize=True) for kind, f in shipped["framings"].items()}


def test_a_turned_face_is_cropped_as_the_upright_one_by_its_eyes():
    from demo_media import astronaut_face

    from emotion_analyzer.core.framing import eye_angle, upright_crop
    from emotion_analyzer.core.images import to_gray_uint8

    face = to_gray_uint8(astronaut_face(150))
    upright = cv2.copyMakeBorder(face, 125, 125, 125, 125, cv2.BORDER_REFLECT)  # 400x400, the face in the middle
    box, eyes = (125, 125, 150, 150), np.array([[170.0, 190.0], [230.0, 190.0]])  # level eyes
    framing = Framing(0.1, -0.05)
    reference = square_crop(upright, framing.crop_box(box)).astype(float)
    for degrees in (-50, -35, -20, 20, 35, 50):
        matrix = cv2.getRotationMatrix2D((200, 200), degrees, 1.0)
        turned = cv2.warpAffine(upright, matrix, (400, 400), borderMode=cv2.BORDER_REFLECT)
        turned_eyes = np.hstack([eyes, np.ones((2, 1))]) @ matrix.T
        turned_eyes = turned_eyes[np.argsort(turned_eyes[:, 0])]  # the image-left eye first, as detectors give
        assert eye_angle(turned_eyes) == pytest.approx(-degrees, abs=0.01)
        aligned = upright_crop(turned, box, turned_eyes, framing).astype(float)
        unaligned = square_crop(turned, framing.crop_box(box)).astype(float)
        assert np.corrcoef(aligned.ravel(), reference.ravel())[0, 1] > 0.97, degrees
        assert np.corrcoef(unaligned.ravel(), reference.ravel())[0, 1] < 0.9, degrees
    level = crop_faces(upright, [box], framing, eyes=[eyes]).pixels
    np.testing.assert_array_equal(level[0, ..., 0], crop_faces(upright, [box], framing).pixels[0, ..., 0])


def test_each_face_can_have_its_own_framing():
    from demo_media import FACE_IN_REGION, astronaut_face

    from emotion_analyzer.core.images import to_gray_uint8

    gray = to_gray_uint8(astronaut_face(150))
    tight, wide = Framing(0.0, 0.0), Framing(0.3, -0.1)
    mixed = crop_faces(gray, [FACE_IN_REGION, FACE_IN_REGION], [tight, wide]).pixels
    np.testing.assert_array_equal(mixed[0], crop_faces(gray, [FACE_IN_REGION], tight).pixels[0])
    np.testing.assert_array_equal(mixed[1], crop_faces(gray, [FACE_IN_REGION], wide).pixels[0])
    assert not np.array_equal(mixed[0], mixed[1])
