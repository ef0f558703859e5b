from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from forewarn.notifier.examples import example_context
from forewarn.notifier.render import Renderer, TemplateProblem, check_templates, sms_segments

NBSP = "\u00a0"


def write_event(
    root: Path,
    event: str,
    locale: str,
    *,
    sms: str = "Hello {{ customer.name }}",
    subject: str = "Hello",
    text: str = "Hello {{ customer.name }}",
    html: str = "<p>Hello {{ customer.name }}</p>",
) -> None:
    folder = root / event / locale
    folder.mkdir(parents=True)
    (folder / "sms.txt").write_text(sms)
    (folder / "email_subject.txt").write_text(subject)
    (folder / "email.txt").write_text(text)
    (folder / "email.html").write_text(html)


def context(**changes: Any) -> dict[str, Any]:
    """The example context with top-level sections merged with ``changes``."""
    base = example_context()
    for key, value in changes.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return base


# ---------------------------------------------------------------------- locale fallback


def test_it_falls_back_from_a_regional_locale_to_its_language() -> None:
    rendered = Renderer().render("fault_notice", "sms", "pt-BR", example_context())

    assert rendered.body.startswith("Olá Marta Silva, é a forewarn.")


def test_it_falls_back_to_the_default_locale_when_the_language_has_no_templates() -> None:
    rendered = Renderer().render("job_cancelled", "sms", "pt-BR", example_context())

    assert rendered.body.startswith("forewarn: job #1042")


def test_it_falls_back_to_the_default_locale_for_an_unknown_locale() -> None:
    rendered = Renderer().render("fault_notice", "email", "de-AT", example_context())

    assert rendered.subject == "We detected a problem with your inverter at Silva home"


def test_it_prefers_the_regional_templates_when_they_exist(tmp_path: Path) -> None:
    write_event(tmp_path, "hello", "en", sms="Hello")
    write_event(tmp_path, "hello", "pt", sms="Olá")
    write_event(tmp_path, "hello", "pt-BR", sms="Oi")
    renderer = Renderer(tmp_path)

    assert renderer.render("hello", "sms", "pt-BR", {}).body == "Oi"
    assert renderer.render("hello", "sms", "pt-PT", {}).body == "Olá"
    assert renderer.render("hello", "sms", "fr", {}).body == "Hello"


def test_it_uses_the_configured_default_locale(tmp_path: Path) -> None:
    write_event(tmp_path, "hello", "en", sms="Hello")
    write_event(tmp_path, "hello", "pt", sms="Olá")

    assert Renderer(tmp_path, default_locale="pt").render("hello", "sms", "fr", {}).body == "Olá"


# ------------------------------------------------------------------------------ errors


def test_it_reports_an_undefined_variable_instead_of_rendering_a_blank() -> None:
    incomplete = example_context()
    del incomplete["site"]

    with pytest.raises(TemplateProblem, match="'site' is undefined"):
        Renderer().render("fault_notice", "sms", "en", incomplete)


def test_it_reports_an_undefined_attribute_of_a_known_variable() -> None:
    incomplete = example_context()
    del incomplete["ticket"]["sla_due"]

    with pytest.raises(TemplateProblem, match="sla_due"):
        Renderer().render("work_order", "email", "en", incomplete)


def test_it_reports_a_value_a_filter_cannot_format_as_a_template_problem() -> None:
    garbled = context(ticket={"sla_due": "next Tuesday"}, visit={"start": None, "end": None})

    with pytest.raises(TemplateProblem, match=r"work_order/en \(sms\):.*next Tuesday"):
        Renderer().render("work_order", "sms", "en", garbled)


def test_it_reports_an_unknown_time_zone_as_a_template_problem() -> None:
    with pytest.raises(TemplateProblem, match="Mars/Olympus"):
        Renderer().render("work_order", "sms", "en", example_context("Mars/Olympus"))


def test_it_reports_an_event_without_templates() -> None:
    with pytest.raises(TemplateProblem, match="no templates for event 'invoice'"):
        Renderer().render("invoice", "sms", "en", example_context())


def test_it_reports_a_missing_template_file(tmp_path: Path) -> None:
    write_event(tmp_path, "hello", "en")
    (tmp_path / "hello" / "en" / "email.html").unlink()

    with pytest.raises(TemplateProblem, match=r"hello/en/email\.html is missing"):
        Renderer(tmp_path).render("hello", "email", "en", example_context())


# ---------------------------------------------------------------------------- escaping


def test_it_escapes_markup_in_the_html_email_only() -> None:
    name = "<script>alert(1)</script> Silva & Filhos"
    hostile = context(customer={"name": name})
    renderer = Renderer()

    email = renderer.render("fault_notice", "email", "en", hostile)
    sms = renderer.render("fault_notice", "sms", "en", hostile)

    assert email.html is not None
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Silva &amp; Filhos" in email.html
    assert f"Hello {name}," in email.body
    assert sms.body.startswith(f"Hello {name}, forewarn here.")
    assert "&amp;" not in sms.body + email.body + (email.subject or "")


def test_it_renders_the_email_in_three_parts_and_the_sms_as_one_line() -> None:
    renderer = Renderer()

    email = renderer.render("work_order", "email", "en", example_context())
    sms = renderer.render("work_order", "sms", "en", example_context())

    assert email.subject == "Work order #1042 (P2): SunPeak 5K at Silva home"
    assert email.body.startswith("Hello Ana Costa,\n\nYou have a new work order.")
    assert email.body.endswith("-- forewarn\n")
    assert email.html is not None
    assert email.html.startswith("<!doctype html>")
    assert sms.subject is None
    assert sms.html is None
    assert "\n" not in sms.body


def test_it_shows_times_in_the_recipients_time_zone() -> None:
    # The SLA is 09:00 UTC: 16:00 in Bangkok, 09:00 in Lisbon in November.
    renderer = Renderer()

    def unbooked(zone: str) -> dict[str, Any]:
        return {**example_context(zone), "visit": {"start": None, "end": None}}

    in_bangkok = renderer.render("work_order", "sms", "en", unbooked("Asia/Bangkok"))
    in_lisbon = renderer.render("work_order", "sms", "en", unbooked("Europe/Lisbon"))

    assert "Due Thu 26 Nov 16:00 (Asia/Bangkok time)." in in_bangkok.body
    assert "Due Thu 26 Nov 09:00 (Europe/Lisbon time)." in in_lisbon.body


# ------------------------------------------------------------------------------ privacy


def every_sms(renderer: Renderer, sample: dict[str, Any]) -> dict[str, str]:
    return {
        f"{event}/{locale}": renderer.render(event, "sms", locale, sample).body
        for event in renderer.events()
        for locale in renderer.locales(event)
    }


def test_it_never_puts_the_street_address_or_the_serial_number_in_an_sms() -> None:
    renderer = Renderer()
    sample = context(
        site={"address": "Rua das Flores 12, Cascais"}, device={"serial": "SN-7Q4-0091"}
    )

    bodies = every_sms(renderer, sample)

    assert {"fault_notice/en", "fault_notice/pt", "work_order/en"} <= bodies.keys()
    for where, body in bodies.items():
        assert "Rua das Flores" not in body, where
        assert "SN-7Q4-0091" not in body, where
    # The technician's email does carry them: the sample is not what hides them.
    email = renderer.render("work_order", "email", "en", sample)
    assert "Rua das Flores 12, Cascais" in email.body
    assert "SN-7Q4-0091" in email.body


def test_it_keeps_the_shipped_examples_address_out_of_every_sms() -> None:
    sample = example_context()

    for where, body in every_sms(Renderer(), sample).items():
        assert sample["site"]["address"] not in body, where
        assert sample["device"]["serial"] not in body, where


# ----------------------------------------------------------------------- SMS segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        pytest.param("", 1, id="empty"),
        pytest.param("a" * 160, 1, id="160"),
        pytest.param("a" * 161, 2, id="161"),
        pytest.param("a" * 306, 2, id="306"),
        pytest.param("a" * 307, 3, id="307"),
        # Accented letters in the GSM-7 alphabet keep the cheap encoding.
        pytest.param("é" * 160, 1, id="160 e-acute"),
        pytest.param("Ñ" * 161, 2, id="161 N-tilde"),
    ],
)
def test_it_counts_gsm7_messages_in_segments_of_160_then_153(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        pytest.param("ã" * 70, 1, id="70 a-tilde"),
        pytest.param("ã" * 71, 2, id="71 a-tilde"),
        pytest.param("ã" * 134, 2, id="134 a-tilde"),
        pytest.param("ã" * 135, 3, id="135 a-tilde"),
        # One non-breaking space, pasted from a word processor, turns a 1-segment GSM
        # message into a 2-segment UCS-2 one.
        pytest.param("a" * 69 + NBSP, 1, id="70 with a no-break space"),
        pytest.param("a" * 70 + NBSP, 2, id="71 with a no-break space"),
        pytest.param("a" * 100 + NBSP + "a" * 59, 3, id="160 with a no-break space"),
        pytest.param("Curly “quotes” too" + "a" * 60, 2, id="curly quotes"),
    ],
)
def test_it_counts_ucs2_messages_in_segments_of_70_then_67(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


def test_it_switches_to_ucs2_for_a_single_non_breaking_space() -> None:
    plain = "a" * 150
    pasted = "a" * 75 + NBSP + "a" * 74

    assert sms_segments(plain) == 1
    assert sms_segments(pasted) == 3


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        # €, [, ], {, }, ^, ~, | and \ take two GSM-7 septets each.
        pytest.param("€" * 80, 1, id="80 euro signs"),
        pytest.param("€" * 81, 2, id="81 euro signs"),
        pytest.param("a" * 159 + "[", 2, id="159 letters and a bracket"),
        # An emoji is two UTF-16 code units.
        pytest.param("🔧" * 35, 1, id="35 emoji"),
        pytest.param("🔧" * 36, 2, id="36 emoji"),
    ],
)
def test_it_counts_characters_that_take_two_units_twice(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


def test_it_tells_the_segments_of_a_rendered_sms() -> None:
    # Without a forecast: its "°" alone would bill the English notice as UCS-2.
    plain = {**example_context(), "forecast": None}
    english = Renderer().render("fault_notice", "sms", "en", plain)
    portuguese = Renderer().render("fault_notice", "sms", "pt", plain)

    assert english.sms_segments == sms_segments(english.body) == 2
    # "ã" and "ê" are not in GSM-7: the Portuguese notice is billed as UCS-2.
    assert portuguese.sms_segments == sms_segments(portuguese.body) == 4


# ---------------------------------------------------------------------- check_templates


def test_it_finds_no_problem_in_the_shipped_templates() -> None:
    assert check_templates(Renderer()) == []


def test_it_reports_each_broken_template_with_its_place(tmp_path: Path) -> None:
    write_event(tmp_path, "hello", "en")
    write_event(tmp_path, "outage", "en", sms="Power is back at {{ site.nmae }}")
    write_event(tmp_path, "outage", "pt", html="<p>{% if customer %}Olá</p>")

    problems = check_templates(Renderer(tmp_path))

    assert len(problems) == 2
    [undefined] = [p for p in problems if "outage/en" in p]
    [syntax] = [p for p in problems if "outage/pt" in p]
    assert "(sms)" in undefined
    assert "nmae" in undefined
    assert "(email)" in syntax


def test_it_reports_a_locale_that_lacks_one_of_the_template_files(tmp_path: Path) -> None:
    write_event(tmp_path, "hello", "en")
    (tmp_path / "hello" / "en" / "sms.txt").unlink()

    assert check_templates(Renderer(tmp_path)) == ["template hello/en/sms.txt is missing"]


def test_it_reports_an_event_with_no_templates_in_the_default_locale(tmp_path: Path) -> None:
    # A customer whose language has no templates gets the default ones: without them the
    # message would fail when it is sent, not when the templates are checked.
    write_event(tmp_path, "hello", "en")
    write_event(tmp_path, "outage", "pt")

    problems = check_templates(Renderer(tmp_path))

    assert len(problems) == 1
    assert "outage" in problems[0]
    assert "'en'" in problems[0]
