"""Ids, access rules and the validation of skills, preferences and events as plain Python.
No server."""

from __future__ import annotations

import uuid

import pytest

from domain import preferences, skills
from domain.access import Principal, require_member, require_member_or_self
from domain.errors import BadUserInput, Forbidden, Rejected
from domain.events import parse_position
from domain.ids import PREFIX_BY_KIND, parse_global_id, parse_id_of, to_global_id


@pytest.mark.parametrize("kind", sorted(PREFIX_BY_KIND))
def test_a_global_id_names_its_kind_and_comes_back_as_its_uuid(kind: str) -> None:
    row_id = uuid.uuid4()
    global_id = to_global_id(kind, row_id)
    assert global_id == f"{PREFIX_BY_KIND[kind]}_{row_id.hex}"
    assert parse_global_id(global_id) == (kind, row_id)
    assert parse_id_of(kind, global_id) == row_id


def test_an_id_of_another_kind_is_none_and_a_malformed_one_bad_input() -> None:
    assert parse_id_of("Campaign", to_global_id("Activity", uuid.uuid4())) is None
    for bad in ("", "cmp_", "cmp_xyz", "zzz_" + uuid.uuid4().hex, "cmp_" + "g" * 32):
        with pytest.raises(BadUserInput):
            parse_global_id(bad)


def principal(is_agent: bool, subject: uuid.UUID | None = None) -> Principal:
    return Principal(
        subject_id=subject or uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        audience="agent" if is_agent else "dashboard",
        is_agent=is_agent,
        role=None if is_agent else "VIEWER",
        expires_at=0.0,
    )


def test_tenant_wide_reads_are_for_users_and_an_agent_reads_only_its_own() -> None:
    user, agent_id = principal(False), uuid.uuid4()
    require_member(user)
    require_member_or_self(user, agent_id)
    agent = principal(True, agent_id)
    require_member_or_self(agent, agent_id)
    with pytest.raises(Forbidden):
        require_member(agent)
    with pytest.raises(Forbidden):
        require_member_or_self(agent, uuid.uuid4())
    assert agent.global_id == to_global_id("Agent", agent_id)
    assert user.global_id.startswith("usr_")


def test_a_tenant_changes_its_own_skills_never_a_global_or_anothers() -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    skills.check_owner(tenant, tenant)
    skills.check_owner(None, None)  # the global scope changes global skills
    with pytest.raises(Rejected) as refused:
        skills.check_owner(other, tenant)
    assert refused.value.code == "NOT_FOUND"  # another tenant's: as unknown
    with pytest.raises(Rejected) as refused:
        skills.check_owner(None, tenant)
    assert refused.value.code == "FORBIDDEN"


def test_skill_fields_are_trimmed_and_checked() -> None:
    cleaned = skills.clean_fields(
        {"name": " Tone ", "summary": "How we sound", "content": "# Tone\n\tWarm.", "role": None},
        partial=False,
    )
    assert cleaned == {
        "name": "Tone",
        "summary": "How we sound",
        "content": "# Tone\n\tWarm.",
        "role": None,
    }
    assert skills.clean_fields({"summary": "New"}, partial=True) == {"summary": "New"}
    for fields, field in [
        ({"summary": "s", "content": "c"}, "name"),
        ({"name": "n", "summary": "two\nlines", "content": "c"}, "summary"),
        ({"name": "n", "summary": "s", "content": "\x07"}, "content"),
        ({"name": "n", "summary": "s", "content": "c", "role": "JANITOR"}, "role"),
    ]:
        with pytest.raises(Rejected) as refused:
            skills.clean_fields(fields, partial=False)
        assert refused.value.field == ["input", field]


def test_a_skill_search_is_normalised_and_bounded() -> None:
    assert skills.search_terms("  seo   audit ", None) == ("seo audit", 5)
    for query, first in (("   ", 5), ("x" * 1001, 5), ("seo", 0), ("seo", 51)):
        with pytest.raises(BadUserInput):
            skills.search_terms(query, first)


def test_preferences_have_short_keys_and_small_json_values() -> None:
    assert preferences.encode_preference("dashboard.theme", {"dark": True}) == b'{"dark":true}'
    with pytest.raises(Rejected, match="key"):
        preferences.encode_preference("no spaces", 1)
    with pytest.raises(Rejected, match="bytes"):
        preferences.encode_preference("big", "x" * preferences.MAX_VALUE_BYTES)


def test_event_positions_compare_as_pairs() -> None:
    assert parse_position("1700000000000-2") < parse_position("1700000000000-10")
    for bad in ("", "12", "a-1", "1-", "-1"):
        with pytest.raises(ValueError):
            parse_position(bad)
