"""`--chat-template`: a file (raw template, or JSON with a `chat_template` key) or an inline template."""

import json
from pathlib import Path

from .errors import ConfigError
from .values import read_text_file


def _compile(template: str, where: str) -> str:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"]).parse(template)
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{where}: not a valid Jinja template ({exc.__class__.__name__}: {exc})") from None
    return template


def _from_file(path: Path, flag: str) -> str:
    text = read_text_file(path, flag)
    if path.suffix == ".json" or text.lstrip().startswith("{\""):
        try:
            content = json.loads(text)
        except json.JSONDecodeError:
            content = None
        if isinstance(content, dict):
            template = content.get("chat_template")
            if not isinstance(template, str):
                raise ConfigError(f"{flag}: {path} is JSON without a string 'chat_template' key")
            return _compile(template, f"{flag} {path}")
    return _compile(text, f"{flag} {path}")


def resolve_chat_template(value: str, flag: str = "--chat-template") -> str:
    """The template text of a `--chat-template` value.

    A readable file wins; otherwise the value must itself be a template (it holds `{{` or `{%`)
    that compiles. Anything else (e.g. a mistyped file name) is an error.
    """
    path = Path(value).expanduser()
    if path.is_file():
        return _from_file(path, flag)
    if "{{" in value or "{%" in value:
        return _compile(value, f"{flag} (inline template)")
    raise ConfigError(f"{flag}: {value!r} is neither a readable file nor an inline Jinja template")
