"""A declared source's answer: its body decoded by the declaration's ``format`` and its records
picked out by ``records``, each with where it was found (for `value:` templates).

``format: xml`` decodes an XML document to the tree the dotted paths walk, as the JSON one:
``{root_tag: {"@attribute": "text", "child": {...}, "#text": "text"}}``; a child element repeated
becomes a list, an element with neither attributes nor children its text. A one-element list
cannot be told from a single element in XML: where ``records`` (or a ``*`` of its path) meets a
single element, it is a list of one. The parser is defusedxml's: a DTD, an entity or an external
reference is refused (`SourceError`), never expanded.

``records`` (declared_spec.RecordsSpec)::

    records: data                                  # the list at a dotted path
    records: {path: root.ratelist.city.*.item}      # every `item` of every `city`
    records: {path: data, one: true}               # the object there is one record
    records: {lists: {stock: data.topHoldings, industry: data.industries}}   # named lists
    records: {lists: {industry: {path: data.industries, fields: {name: industry}}}}

A record's `parent` is the object holding its list (the ``city`` above; ``ExrateList`` for
``ExrateList.Exrate``), its `list` the name its list has under ``lists``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ingestion_pipelines.sources.base import SourceError, exact_json
from ingestion_pipelines.sources.declared_spec import RecordsSpec
from ingestion_pipelines.sources.paginators import at_path

TEXT = "#text"


@dataclass(frozen=True)
class Found:
    """One record of a body and where it was: the object holding its list, its list's name."""

    item: Any
    parent: Any = None
    list_name: str | None = None
    fields: Mapping[str, str] | None = None  # column -> path, where its list names it its way

    def relabelled(self) -> Any:
        """The record with its list's own fields moved to the columns they fill (a top-level
        field moved is no longer in the record; a nested one stays, for `extra`)."""
        if not self.fields or not isinstance(self.item, Mapping):
            return self.item
        moved = {path for path in self.fields.values() if "." not in path}
        item = {k: v for k, v in self.item.items() if k not in moved}
        item.update({column: at_path(self.item, path) for column, path in self.fields.items()})
        return item


# ---- decoding --------------------------------------------------------------------------------


def decode_body(content: bytes, fmt: str) -> Any:
    """The body as the tree dotted paths walk: JSON with exact decimals, or XML (`xml_tree`)."""
    if fmt == "xml":
        return xml_tree(content)
    return exact_json(_Content(content))


@dataclass(frozen=True)
class _Content:
    content: bytes


def xml_tree(content: bytes) -> dict[str, Any]:
    """An XML document as ``{root_tag: element}``; DTDs and entities refused."""
    try:
        root = fromstring(content, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise SourceError(f"XML refused ({type(exc).__name__}): {exc}") from None
    except ParseError as exc:
        raise SourceError(f"not an XML document: {exc}: {content[:200]!r}") from None
    return {root.tag: _element(root)}


def _element(element: Element) -> Any:
    node: dict[str, Any] = {f"@{name}": value for name, value in element.attrib.items()}
    for child in element:
        value = _element(child)
        if child.tag not in node:
            node[child.tag] = value
        elif isinstance(node[child.tag], list):
            node[child.tag].append(value)
        else:
            node[child.tag] = [node[child.tag], value]
    text = element.text if element.text and (len(element) == 0 or element.text.strip()) else None
    if not node:
        return text
    if text is not None:
        node[TEXT] = text
    return node


def xml_bytes(tree: Mapping[str, Any]) -> bytes:
    """The XML document of a tree `xml_tree` made (what a replay serves once a test changed it)."""
    ((tag, node),) = tree.items()
    root = Element(tag)
    _fill(root, node)
    return tostring(root, encoding="utf-8", xml_declaration=True)


def _fill(element: Element, node: Any) -> None:
    if not isinstance(node, Mapping):
        element.text = None if node is None else str(node)
        return
    for key, value in node.items():
        if key == TEXT:
            element.text = str(value)
        elif key.startswith("@"):
            element.set(key[1:], str(value))
        else:
            for each in value if isinstance(value, list) else [value]:
                _fill(SubElement(element, key), each)


# ---- records ---------------------------------------------------------------------------------


def found_records(body: Any, spec: RecordsSpec, fmt: str = "json") -> list[Found]:
    """Every record of `body` as `spec` says where they are; `SourceError` when one is missing."""
    if spec.lists:
        found: list[Found] = []
        for name, listed in spec.lists.items():
            path, fields = (
                (listed, None) if isinstance(listed, str) else (listed.path, listed.fields)
            )
            if at_path(body, path) is None:
                continue  # an absent list: none of these records published
            found += _walk(body, path, fmt, one=False, name=name, fields=fields)
        return found
    return _walk(body, spec.path, fmt, one=spec.one, name=None)


def _walk(body: Any, path: str, fmt: str, one: bool, name: str | None, fields=None) -> list[Found]:
    *through, last = path.split(".*.") if path else [""]
    holders = [body]
    for step in through:
        holders = [e for h in holders for e in _listed(at_path(h, step), fmt, where=step)]
        if not holders:
            return []
    parent_path, _, _ = last.rpartition(".")
    found: list[Found] = []
    for holder in holders:
        value = at_path(holder, last)
        if one:
            if not isinstance(value, Mapping):
                raise SourceError(f"expected one record (an object) at {path or 'the body'}")
            items = [value]
        else:
            items = _listed(value, fmt, where=path)
        parent = at_path(holder, parent_path) if parent_path else holder
        found.extend(Found(item, parent, name, fields) for item in items)
    return found


def _listed(value: Any, fmt: str, where: str | None = None) -> list[Any]:
    if isinstance(value, list):
        return value
    if fmt == "xml" and isinstance(value, Mapping):
        return [value]  # one element of a repeatable tag
    raise SourceError(f"expected a list of records at {where or 'the body'}: {str(value)[:200]}")


def check_required(body: Any, required: Mapping[str, str]) -> None:
    """`SourceError` unless the body holds each required value (a unit the feed must state)."""
    for path, wanted in required.items():
        sent = at_path(body, path)
        if sent != wanted:
            raise SourceError(f"{path} is {sent!r}, expected {wanted!r}: the feed changed")


def served_whole(spec: Any) -> bool:
    """Whether a replay serves the recorded body whole (records nested, in named lists, one
    object, or XML) rather than cutting pages from one list (a RestSourceSpec)."""
    records = spec.records_spec()
    return spec.format != "json" or records.one or bool(records.lists) or ".*." in records.path
