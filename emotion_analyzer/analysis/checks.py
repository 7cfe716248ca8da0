"""What can be wrong with a run before any work, and before TensorFlow starts: the display, the source,
the model file and every output (writable, not an input, not another output)."""

from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.analysis.capture import parse_source
from emotion_analyzer.analysis.outputs import check_annotated_name
from emotion_analyzer.analysis.window import check_display_available
from emotion_analyzer.common.fileio import check_output_folder, check_output_path
from emotion_analyzer.core.images import image_files_under
from emotion_analyzer.core.model import check_model_file
from emotion_analyzer.errors import UserError


def summary_plot_path(kept):
    """The summary chart saved beside the CSV or video a run keeps."""
    return Path(kept).with_name(Path(kept).stem + "_summary.png")


def input_files(model, source):
    """Every file a run reads: the model, its JSON, and the source's file or the images of its folder."""
    inputs = [Path(model), config.model_info_path(model)]
    source = Path(str(source))
    if source.is_dir():
        inputs += image_files_under(source)
    elif source.exists():
        inputs.append(source)
    return inputs


def check_run(model, source, outputs):
    """Everything about a run that can be wrong before any work (and before TensorFlow starts): the
    display, the source, the model file and the outputs; raises UserError naming the first problem."""
    kind, _ = parse_source(source)
    if outputs.display:
        check_display_available(camera=kind == "camera")
    check_model_file(model)
    check_output_paths(model, source, kind, outputs)


def check_output_paths(model, source, kind, outputs):
    """Before any work: every output of a run reading `source` (of `kind`: 'video', 'folder', ...) can be
    written, and none is an input or another output of the run."""
    if outputs.json and kind not in ("image", "folder"):
        raise UserError(f"--json {outputs.json}: JSON is written for photos; for a {kind} use --csv")
    named = {flag: Path(path) for flag, path in (("--output", outputs.annotated), ("--csv", outputs.csv),
                                                 ("--json", outputs.json)) if path}
    if outputs.annotated:
        check_annotated_name(outputs.annotated, kind)
    if kind == "folder" and outputs.annotated:
        check_photo_folder_output(Path(source), named.pop("--output"))
    if named and outputs.summary_plot:
        named["summary chart"] = summary_plot_path(outputs.csv or outputs.annotated or outputs.json)
    inputs = {path.resolve(): path for path in input_files(model, source)}
    seen = {}
    for flag, path in named.items():
        resolved = path.resolve()
        if resolved in inputs:
            raise UserError(f"{flag} {path} is the input {inputs[resolved]}: writing it would destroy it;"
                            " choose another name")
        if resolved in seen:
            raise UserError(f"{flag} {path} is also the {seen[resolved]}; give each output its own name")
        seen[resolved] = flag
        check_output_path(path, flag)


def check_photo_folder_output(source, folder):
    """The folder annotated photos go into: writable, and outside the source folder, which a rerun
    would otherwise read them from."""
    if folder.resolve() == source.resolve() or source.resolve() in folder.resolve().parents:
        raise UserError(f"--output {folder} is inside the source folder {source}: a rerun would read the"
                        " annotated photos as photos; choose a folder outside it")
    check_output_folder(folder, "--output")
