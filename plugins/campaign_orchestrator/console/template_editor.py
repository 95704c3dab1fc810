"""The template editor's work: one template's entry edited as YAML, checked, previewed and saved.

Invariants:
- The editor shows and takes one template's entry, never its whole file. An edit is put back
  into the file with round-trip YAML (ruamel): the file's other templates and every comment stay,
  the entry's own comments included; a single-template file keeps its header comment. The id
  stays: campaigns name the template by it.
- An edit is judged by `campaigns validate`'s own check on a copy of the folder
  (`DefinitionStore.check_changes`), and only an edit that passes is previewed, with the
  definitions of that checked copy, so the preview is what the night would render from the saved
  file (`render.preview.preview_template`: same compiled template, locale fallback and policy).
- The preview page runs no script and loads nothing: `as_html` escapes every value and sets a
  policy without scripts; images are drawn as boxes naming their URL (`remote_images=False`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from campaign_orchestrator.console.catalog import Item
from campaign_orchestrator.console.checks import FolderCheck
from campaign_orchestrator.console.service import Console
from campaign_orchestrator.console.store import Change, Stored
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.definitions.templates import LOCALE_PATTERN, normalise_locale
from campaign_orchestrator.render.compiled import RenderPolicy
from campaign_orchestrator.render.preview import as_html, preview_template

SAMPLE = 5  # customers previewed when none are named
MAX_CUSTOMERS = 20  # named at most, so one preview stays one quick query and a page of cards
LOCALE_RE = re.compile(LOCALE_PATTERN)


class NotInFile(Exception):
    """The template is not (or no longer) in the file the page named."""


class BadRequest(Exception):
    """The preview's request itself is wrong (not the template): 422 with the message."""


def _yaml() -> YAML:
    rt = YAML()
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 4096  # never fold a long line of text the marketer wrote on one line
    return rt


def _dump(node: Any) -> str:
    out = io.StringIO()
    _yaml().dump(node, out)
    return out.getvalue()


def _load(text: str) -> Any:
    try:
        return _yaml().load(text)
    except YAMLError as exc:
        raise NotInFile(f"the file is not valid YAML: {exc}") from None


def _find(doc: Any, template_id: str) -> tuple[Any, int | None]:
    """(the entry, its index in `templates:`), or (the document, None) for a single-template file."""
    if hasattr(doc, "get") and "templates" in doc:
        for i, entry in enumerate(doc.get("templates") or []):
            if hasattr(entry, "get") and entry.get("id") == template_id:
                return entry, i
    elif hasattr(doc, "get") and doc.get("id") == template_id:
        return doc, None
    raise NotInFile(f"template {template_id!r} is not in this file any more")


def entry_text(file_text: str, template_id: str) -> str:
    """The template's own entry as YAML, with its comments and quoting (not the file's header)."""
    entry, index = _find(_load(file_text), template_id)
    if index is None:
        entry.ca.comment = None  # the file's header comment is not the template's
    return _dump(entry)


def parse_entry(text: str, template_id: str) -> tuple[Any, str | None]:
    """(the entry, None), or (None, what is wrong with it) in words for the page."""
    try:
        entry = _yaml().load(text)
    except YAMLError as exc:
        return None, f"the template is not valid YAML: {exc}".replace("\n", " ")
    if not hasattr(entry, "get"):
        return None, "the template is a mapping: id, channel, content, ..."
    if entry.get("id") != template_id:
        return None, f"id: stays {template_id!r} here (campaigns name the template by it)"
    return entry, None


def with_entry(file_text: str, template_id: str, entry: Any) -> str:
    """The file with the template's entry replaced; the rest of the file as it was."""
    doc = _load(file_text)
    _, index = _find(doc, template_id)
    if index is None:
        if not entry.ca.comment:
            entry.ca.comment = doc.ca.comment  # keep the file's header (the schema line)
        return _dump(entry)
    doc["templates"][index] = entry
    return _dump(doc)


@dataclass
class Checked:
    text: str | None  # the file with the edit in place (None when the edit is not a template)
    problems: list[str] = field(default_factory=list)
    check: FolderCheck | None = None

    @property
    def definitions(self) -> Definitions | None:
        return None if self.problems or self.check is None else self.check.definitions


def edited_file(app: Console, stored: Stored, template_id: str, text: str) -> tuple[str | None, list[str]]:
    """(the file with the edited entry in place, []) or (None, why not): not YAML, another id, gone."""
    where = f"{app.config_dir / stored.file}: "
    entry, problem = parse_entry(text, template_id)
    if problem is not None:
        return None, [where + problem]
    try:
        return with_entry(stored.text or "", template_id, entry), []
    except NotInFile as exc:
        return None, [where + str(exc)]


def check_template_edit(app: Console, stored: Stored, template_id: str, text: str) -> Checked:
    """The edited entry put into its file and checked like `campaigns validate`; the problems are
    those naming this file (all of them when the folder does not load for another file's reason)."""
    new_text, problems = edited_file(app, stored, template_id, text)
    if new_text is None:
        return Checked(None, problems)
    check = app.store.check_changes([Change(stored.file, new_text, stored.version)])
    mine = check.problems_in(app.config_dir / stored.file)
    if not mine and check.definitions is None:
        mine = check.problems
    return Checked(new_text, mine, check)


def locales_of(default_locale: Any, translations: Iterable[Any], definitions: Definitions | None) -> list[str]:
    """The default content's locale, then each translation's: what the locale picker offers."""
    fallback = definitions.settings.default_locale if definitions is not None else RenderPolicy().default_locale
    default = normalise_locale(str(default_locale or fallback))
    return [default, *(t for t in (normalise_locale(str(t)) for t in translations) if t != default)]


def preview_request(body: dict[str, Any]) -> tuple[list[str] | None, str | None]:
    """(customer ids or None for a sample, locale or None for each customer's own); BadRequest."""
    customers = body.get("customers") or []
    if not isinstance(customers, list) or not all(isinstance(c, str) for c in customers):
        raise BadRequest("customers is a list of customer ids")
    ids = list(dict.fromkeys(c.strip() for c in customers if c.strip()))
    if len(ids) > MAX_CUSTOMERS:
        raise BadRequest(f"at most {MAX_CUSTOMERS} customers at a time")
    locale = body.get("locale") or None
    if locale is not None and (not isinstance(locale, str) or not LOCALE_RE.fullmatch(normalise_locale(locale))):
        raise BadRequest("locale is a locale such as 'de' or 'fr-ca', or empty for each customer's own")
    return ids or None, normalise_locale(locale) if locale else None


def preview_of(
    app: Console, definitions: Definitions, template_id: str, customer_ids: list[str] | None, locale: str | None
) -> dict[str, Any]:
    """The preview page and each customer's line; PreviewError (an unknown customer) is raised."""
    variables = app.checker.template_variables()
    template = definitions.templates[template_id]
    messages = preview_template(app.engine, definitions, variables, template_id, customer_ids, SAMPLE, locale)
    return {
        "html": as_html(template_id, None, messages, remote_images=False),
        "locales": locales_of(template.default_locale, template.locales, definitions),
        "messages": [
            {
                "customer_id": m.customer_id,
                "customer_locale": m.customer_locale,
                "content_locale": m.content_locale,
                "payload": m.payload,
                "error": m.error,
            }
            for m in messages
        ],
    }


def page_context(app: Console, item: Item) -> dict[str, Any]:
    """What the editor page shows besides the text: the channel and the locale picker's choices."""
    locales = locales_of(item.data.get("default_locale"), item.data.get("locales") or {}, app.check().definitions)
    return {"item": item, "channel": str(item.data.get("channel", "")), "locales": locales}
