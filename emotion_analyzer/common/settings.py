"""Settings declared once, as dataclass fields with their help in the field's metadata, and set from the
command line by name: a command's common options come from the fields marked `option`, and every
field, nested ones too (`haar.min_neighbors`), can be set with `--set NAME=VALUE`."""

import dataclasses
import difflib
import types
import typing
from pathlib import Path

from emotion_analyzer.errors import UserError

SET_FLAG = "--set"
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def setting(default=dataclasses.MISSING, help="", option=False, choices=None, factory=None, hidden=False,
            start=None, parse=None, metavar=None):
    """A dataclass field with its help text; `option`: also a command-line option of its own (--name),
    its value read by `parse` (an argparse type) when given; `hidden`: not set by name (a value another
    setting decides); `start`: for a group of settings that is None by default, what setting one of its
    fields starts from."""
    metadata = {"help": help, "option": option, "choices": choices, "hidden": hidden, "start": start,
                "parse": parse, "metavar": metavar}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _types_of(annotation):
    """(the plain types a field takes, whether it takes None)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = typing.get_args(annotation)
        return tuple(a for a in args if a is not type(None)), type(None) in args
    return (annotation,), False


def _default_of(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _nested_class(field):
    plain, _ = _types_of(field.type)
    return next((t for t in plain if dataclasses.is_dataclass(t)), None)


def settable(cls, prefix="", defaults=None):
    """{dotted name: (field, default)} of every setting of `cls` (whose defaults are `defaults`', an
    instance, when given), nested settings' fields too."""
    names = {}
    for field in dataclasses.fields(cls):
        if field.metadata.get("hidden"):
            continue
        name, nested = prefix + field.name, _nested_class(field)
        default = getattr(defaults, field.name) if defaults is not None else _default_of(field)
        names[name] = (field, default)
        if nested is not None:
            names.update(settable(nested, name + ".", default if default is not None else field.metadata.get("start")))
    return names


def parse_value(text, field, name):
    """`text` as the value of `field`, refused in one line naming `name` when it is not one."""
    plain, optional = _types_of(field.type)
    lowered = text.strip().lower()
    if optional and lowered == "none":
        return None
    choices = field.metadata.get("choices")
    for kind in plain:
        if kind is bool:
            if lowered in TRUE + FALSE:
                return lowered in TRUE
            continue
        if kind in (int, float):
            try:
                value = kind(text)
            except ValueError:
                continue
            return value
        if kind in (str, Path) and (not choices or text in choices):
            return kind(text)
    expected = (f"one of {', '.join(choices)}" if choices else
                " or ".join({bool: "true or false", int: "a whole number", float: "a number", str: "a text"}.get(k, k.__name__)
                            for k in plain if not dataclasses.is_dataclass(k)) or "a group of settings")
    raise UserError(f"{SET_FLAG} {name}={text}: expected {expected}{' or none' if optional else ''}")


def apply(settings, assignments):
    """A copy of the dataclass `settings` with each (dotted name, text) of `assignments` set; a name
    that is no setting, or a value of the wrong kind, is refused in one line."""
    known = settable(type(settings))
    for name, text in assignments:
        if name not in known:
            close = [n for n in known if n.split(".")[-1] == name.split(".")[-1]] or difflib.get_close_matches(name, known)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"{SET_FLAG} {name}: no such setting{hint}; `{SET_FLAG} help` lists them")
        settings = _set(settings, name.split("."), parse_value(text, known[name][0], name))
    return settings


def _set(obj, path, value):
    field = {f.name: f for f in dataclasses.fields(obj)}[path[0]]
    if len(path) == 1:
        return dataclasses.replace(obj, **{path[0]: value})
    inner = getattr(obj, path[0])
    if inner is None:  # a group switched off (smoothing none): set one of its fields and it is on again
        inner = field.metadata.get("start") or _nested_class(field)()
    return dataclasses.replace(obj, **{path[0]: _set(inner, path[1:], value)})


def parse_assignment(text):
    """An argparse type for NAME=VALUE (or `help`)."""
    import argparse

    if text == "help":
        return ("help", None)
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE, such as haar.min_neighbors=6; 'help' lists"
                                         " the names")
    return (name.strip(), value.strip())


def describe(cls):
    """The lines `--set help` prints: every setting, its default and what it does."""
    lines = []
    for name, (field, default) in settable(cls).items():
        if _nested_class(field) is not None:  # a group: its fields follow
            lines.append(f"  {name}: {field.metadata.get('help', '')}")
            continue
        shown = "none" if default is None else str(default).lower() if isinstance(default, bool) else default
        help_text = field.metadata.get("help", "")
        lines.append(f"  {name}={shown}" + (f"\n      {help_text}" if help_text else ""))
    return lines


def add_options(parser, cls, defaults=None):
    """One argparse option per field of `cls` marked `option` (--field-name), its help and default
    from the field; None when not given, so `settings_from` knows what was asked for."""
    defaults = defaults or cls()
    for field in dataclasses.fields(cls):
        if not field.metadata.get("option"):
            continue
        plain, _ = _types_of(field.type)
        kind = plain[0] if plain[0] in (int, float, str) else str
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=None,
                            choices=field.metadata.get("choices"),
                            help=f"{field.metadata['help']} (default: {getattr(defaults, field.name)})")


def settings_from(args, cls, base=None):
    """`base` (default cls()) with the options add_options declared as given, then --set's assignments."""
    settings = base if base is not None else cls()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
             if f.metadata.get("option") and getattr(args, f.name, None) is not None}
    settings = dataclasses.replace(settings, **given)
    return apply(settings, [a for a in getattr(args, "set", None) or () if a[0] != "help"])
